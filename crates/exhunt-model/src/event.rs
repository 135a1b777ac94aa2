//! One model of a Windows event, whatever it was read from.
//!
//! Why a model of our own instead of the evtx crate's JSON: rules must see the same event whether
//! it came from an `.evtx` file, from `evtx_dump` output or (later) from a SIEM export, and the
//! shapes differ (`EventID` as a number, a string or `{"#text": …}`; MSExchange Management
//! cmdlets as an unnamed `Data` array; `UserData` instead of `EventData`). Everything is
//! normalised once here: System fields by their Sigma names, named data fields flat, unnamed data
//! as a list, and field aliases the Sigma process-creation and antivirus rules expect.

use std::borrow::Cow;

use crate::Timestamp;
use serde_json::Value;

/// A data value of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// Several texts (the unnamed `Data` elements).
    List(Vec<String>),
}

impl Val {
    /// The value as text, when it is a single value.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Str(s) => Some(Cow::Borrowed(s)),
            Val::Int(n) => Some(Cow::Owned(n.to_string())),
            Val::List(_) => None,
        }
    }
}

/// A Windows event, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WinEvent {
    /// `System/Channel` (`Security`, `MSExchange Management`…).
    pub channel: String,
    /// `System/Provider/@Name`.
    pub provider: String,
    /// `System/EventID`.
    pub event_id: Option<u32>,
    /// `System/Level` (1 critical, 2 error, 3 warning, 4 information).
    pub level: Option<u8>,
    /// `System/Computer`.
    pub computer: String,
    /// When the event was written.
    pub time: Option<Timestamp>,
    /// `System/EventRecordID`.
    pub record_id: u64,
    /// Named data fields (`EventData/Data[@Name]`, `UserData/*/*`), in file order.
    pub data: Vec<(String, Val)>,
    /// Unnamed `EventData/Data` elements (MSExchange Management cmdlets, classic providers).
    pub unnamed: Vec<String>,
    /// A rendered message, when the source kept one (exports).
    pub message: Option<String>,
}

/// Names under which [`WinEvent::get`] serves the System fields.
pub const SYSTEM_FIELDS: [&str; 7] = [
    "EventID",
    "Channel",
    "Provider_Name",
    "Computer",
    "Level",
    "EventRecordID",
    "Data",
];

impl WinEvent {
    /// A field by its Sigma name: System fields, then data fields, then aliases.
    pub fn get(&self, name: &str) -> Option<Cow<'_, Val>> {
        match name {
            "EventID" => return self.event_id.map(|n| Cow::Owned(Val::Int(n.into()))),
            "Channel" => return Some(Cow::Owned(Val::Str(self.channel.clone()))),
            "Provider_Name" | "Provider" => {
                return Some(Cow::Owned(Val::Str(self.provider.clone())));
            }
            "Computer" => return Some(Cow::Owned(Val::Str(self.computer.clone()))),
            "Level" => return self.level.map(|n| Cow::Owned(Val::Int(n.into()))),
            "EventRecordID" => return Some(Cow::Owned(Val::Int(self.record_id as i64))),
            "Message" if self.message.is_some() => {
                return self.message.clone().map(|m| Cow::Owned(Val::Str(m)));
            }
            _ => {}
        }
        if let Some(v) = self.data_field(name) {
            return Some(Cow::Borrowed(v));
        }
        if name == "Data" && !self.unnamed.is_empty() {
            return Some(Cow::Owned(Val::List(self.unnamed.clone())));
        }
        self.alias(name)
            .and_then(|a| self.data_field(a))
            .map(Cow::Borrowed)
    }

    fn data_field(&self, name: &str) -> Option<&Val> {
        self.data
            .iter()
            .find(|(k, _)| k == name)
            .or_else(|| self.data.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v)
    }

    /// Field names that Sigma rules use for a concept another event type names differently
    /// (what pySigma's Windows pipelines map): Security 4688 for process creation, Defender's
    /// operational events for the antivirus category.
    fn alias(&self, name: &str) -> Option<&'static str> {
        if self.event_id == Some(4688) && self.channel.eq_ignore_ascii_case("Security") {
            return match name {
                "Image" => Some("NewProcessName"),
                "ParentImage" => Some("ParentProcessName"),
                "User" => Some("SubjectUserName"),
                _ => None,
            };
        }
        if self.provider.contains("Windows Defender") {
            return match name {
                "Signature" => Some("Threat Name"),
                "Filename" | "TargetFilename" => Some("Path"),
                "User" => Some("Detection User"),
                _ => None,
            };
        }
        None
    }

    /// The unnamed data joined by spaces: the cmdlet and its parameters as one text, which is how
    /// the MSExchange Management message reads ("Set-OabVirtualDirectory -ExternalUrl …").
    pub fn joined(&self) -> String {
        self.unnamed
            .iter()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Calls `f` on every text of the event (data values, unnamed data, their joined form, the
    /// message) until it returns true. Keyword rules search these.
    pub fn any_text(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        for (_, v) in &self.data {
            match v {
                Val::Str(s) if f(s) => return true,
                Val::List(l) if l.iter().any(|s| f(s)) => return true,
                _ => {}
            }
        }
        if self.unnamed.iter().any(|s| f(s)) {
            return true;
        }
        if self.unnamed.len() > 1 && f(&self.joined()) {
            return true;
        }
        self.message.as_deref().is_some_and(f)
    }

    /// A one-line summary for evidence: channel, event id, provider, then the data.
    pub fn excerpt(&self, max: usize) -> String {
        let mut s = format!(
            "{} {} ({})",
            self.channel,
            self.event_id.map_or("-".into(), |n| n.to_string()),
            self.provider
        );
        for (k, v) in &self.data {
            if let Some(t) = v.as_text()
                && !t.is_empty()
                && t != "-"
            {
                s.push_str(&format!("; {k}={t}"));
            }
        }
        if !self.unnamed.is_empty() {
            s.push_str("; ");
            s.push_str(&self.joined());
        }
        if let Some(m) = &self.message
            && self.data.is_empty()
            && self.unnamed.is_empty()
        {
            s.push_str("; ");
            s.push_str(m);
        }
        truncate(&mut s, max);
        s
    }

    /// Builds the event from the JSON the evtx crate renders (`{"Event": {"System": …,
    /// "EventData": …}}`), which is also what `evtx_dump -o json[l]` writes.
    pub fn from_evtx_json(v: &Value) -> Option<WinEvent> {
        let event = v.get("Event")?;
        let sys = event.get("System")?;
        let mut ev = WinEvent {
            channel: text(sys.get("Channel")).unwrap_or_default(),
            provider: sys
                .get("Provider")
                .and_then(|p| p.get("#attributes"))
                .and_then(|a| a.get("Name").or_else(|| a.get("EventSourceName")))
                .and_then(|n| text(Some(n)))
                .unwrap_or_default(),
            event_id: number(sys.get("EventID")).and_then(|n| u32::try_from(n).ok()),
            level: number(sys.get("Level")).and_then(|n| u8::try_from(n).ok()),
            computer: text(sys.get("Computer")).unwrap_or_default(),
            time: sys
                .get("TimeCreated")
                .and_then(|t| t.get("#attributes"))
                .and_then(|a| a.get("SystemTime"))
                .and_then(Value::as_str)
                .and_then(crate::time::parse_iso),
            record_id: number(sys.get("EventRecordID"))
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            ..WinEvent::default()
        };
        if let Some(data) = event.get("EventData") {
            ev.add_data(data);
        }
        if let Some(Value::Object(user)) = event.get("UserData") {
            // UserData holds one provider-defined element whose children are the fields.
            for (_, inner) in user {
                ev.add_data(inner);
            }
        }
        Some(ev)
    }

    fn add_data(&mut self, data: &Value) {
        match data {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "#attributes" || k == "xmlns" {
                        continue;
                    }
                    if k == "Data" || k == "#text" {
                        self.add_unnamed(v);
                        continue;
                    }
                    if let Some(val) = to_val(v) {
                        self.data.push((k.clone(), val));
                    }
                }
            }
            other => self.add_unnamed(other),
        }
    }

    fn add_unnamed(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                if let Some(t) = m.get("#text") {
                    self.add_unnamed(t);
                }
            }
            Value::Array(a) => {
                for x in a {
                    self.add_unnamed(x);
                }
            }
            Value::Null => {}
            other => {
                if let Some(t) = text(Some(other)) {
                    self.unnamed.push(t);
                }
            }
        }
    }
}

fn to_val(v: &Value) -> Option<Val> {
    match v {
        Value::String(s) => Some(Val::Str(s.clone())),
        Value::Number(n) => Some(
            n.as_i64()
                .map(Val::Int)
                .unwrap_or_else(|| Val::Str(n.to_string())),
        ),
        Value::Bool(b) => Some(Val::Str(b.to_string())),
        Value::Null => None,
        Value::Array(a) => Some(Val::List(a.iter().filter_map(|x| text(Some(x))).collect())),
        Value::Object(m) => m.get("#text").and_then(to_val),
    }
}

/// Text of a JSON value: strings as they are, numbers and booleans written out, `{"#text": …}`
/// unwrapped.
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(m) => text(m.get("#text")),
        _ => None,
    }
}

/// A whole number from a JSON number, a numeric string or `{"#text": …}`.
pub fn number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(m) => number(m.get("#text")),
        _ => None,
    }
}

/// Cuts a text to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exchange_management_event_keeps_unnamed_data() {
        let v = json!({"Event":{"System":{"Provider":{"#attributes":{"Name":"MSExchange CmdletLogs"}},
            "EventID":{"#attributes":{"Qualifiers":"16384"},"#text":"1"},"Level":"4",
            "TimeCreated":{"#attributes":{"SystemTime":"2021-11-19T16:52:33.833733500Z"}},
            "EventRecordID":"3229","Channel":"MSExchange Management","Computer":"WEC.ave.local"},
            "EventData":{"Data":{"#text":["Set-Mailbox","-Identity \"A\"","",""]}}}});
        let ev = WinEvent::from_evtx_json(&v).unwrap();
        assert_eq!(ev.event_id, Some(1));
        assert_eq!(ev.level, Some(4));
        assert_eq!(ev.record_id, 3229);
        assert_eq!(ev.channel, "MSExchange Management");
        assert_eq!(ev.provider, "MSExchange CmdletLogs");
        assert_eq!(ev.unnamed.len(), 4);
        assert_eq!(ev.joined(), "Set-Mailbox -Identity \"A\"");
        assert_eq!(
            ev.time.unwrap().to_rfc3339(),
            "2021-11-19T16:52:33.833733500+00:00"
        );
        let mut seen = Vec::new();
        ev.any_text(&mut |s| {
            seen.push(s.to_string());
            false
        });
        assert!(seen.contains(&"Set-Mailbox -Identity \"A\"".to_string()));
    }

    #[test]
    fn security_4688_serves_sigma_process_names() {
        let v = json!({"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-Auditing"}},
            "EventID":4688,"Channel":"Security","Computer":"ex01"},
            "EventData":{"NewProcessName":"C:\\Windows\\System32\\cmd.exe","ParentProcessName":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","CommandLine":"cmd /c whoami"}}});
        let ev = WinEvent::from_evtx_json(&v).unwrap();
        assert_eq!(
            ev.get("Image").unwrap().as_text().unwrap(),
            "C:\\Windows\\System32\\cmd.exe"
        );
        assert!(
            ev.get("ParentImage")
                .unwrap()
                .as_text()
                .unwrap()
                .ends_with("w3wp.exe")
        );
        assert_eq!(*ev.get("EventID").unwrap(), Val::Int(4688));
        // No alias for another event id.
        let mut other = ev.clone();
        other.event_id = Some(4689);
        assert!(other.get("Image").is_none());
    }

    #[test]
    fn user_data_fields_are_flattened() {
        let v = json!({"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Eventlog"}},
            "EventID":1102,"Channel":"Security","Computer":"ex01"},
            "UserData":{"LogFileCleared":{"#attributes":{"xmlns":"x"},"SubjectUserName":"admin","SubjectDomainName":"LAB"}}}});
        let ev = WinEvent::from_evtx_json(&v).unwrap();
        assert_eq!(
            ev.get("SubjectUserName").unwrap().as_text().unwrap(),
            "admin"
        );
        assert!(ev.excerpt(200).contains("SubjectUserName=admin"));
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        for v in [
            json!({}),
            json!({"Event": 5}),
            json!({"Event": {"System": []}}),
            json!({"Event": {"System": {"EventID": {"x": 1}}, "EventData": "text"}}),
            json!({"Event": {"System": {"EventID": "99999999999"}, "EventData": [1, null, {"#text": "a"}]}}),
        ] {
            let _ = WinEvent::from_evtx_json(&v).map(|e| e.excerpt(10));
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let mut s = "ééé".to_string();
        truncate(&mut s, 3);
        assert_eq!(s, "é…");
    }
}
