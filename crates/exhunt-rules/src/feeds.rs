//! User IOC feeds (`--ioc FILE`): CSV, STIX 2.1 bundles and MISP feed folders. File hashes
//! (SHA-256, SHA-1, MD5) are taken; every entry that is not used is counted by reason, never
//! dropped silently.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::Ioc;

/// What loading a feed gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FeedReport {
    /// The feed's format, as recognised.
    pub format: String,
    /// Hashes loaded.
    pub hashes: Vec<Ioc>,
    /// Entries not used, counted by reason.
    pub unused: BTreeMap<String, usize>,
    /// Files or entries that could not be read, with the reason.
    pub errors: Vec<String>,
}

/// Whether a string is a hex hash, and which.
pub fn hash_type(v: &str) -> Option<&'static str> {
    let v = v.trim();
    if !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match v.len() {
        32 => Some("md5"),
        40 => Some("sha1"),
        64 => Some("sha256"),
        _ => None,
    }
}

fn ioc(value: &str, context: &str, source: &str) -> Ioc {
    Ioc {
        indicator: value.trim().to_ascii_lowercase(),
        class: String::new(),
        context: context.to_string(),
        source: source.to_string(),
        campaign: None,
        published: String::new(),
    }
}

/// Loads a feed: a folder is read as a MISP feed, a `.json` file as a STIX 2.1 bundle or a MISP
/// event, anything else as CSV (or a plain list of hashes).
pub fn load(path: &Path) -> FeedReport {
    let mut r = FeedReport::default();
    let source = path.display().to_string();
    if path.is_dir() {
        r.format = "MISP feed folder".into();
        let mut files: Vec<_> = match std::fs::read_dir(path) {
            Ok(d) => d.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(e) => {
                r.errors.push(format!("{source}: {e}"));
                return r;
            }
        };
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !name.ends_with(".json") || name == "manifest.json" {
                continue;
            }
            match read_json(&f) {
                Ok(v) => misp_event(&v, &f.display().to_string(), &mut r),
                Err(e) => r.errors.push(e),
            }
        }
        return r;
    }
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        match read_json(path) {
            Ok(v) if v.get("type").and_then(Value::as_str) == Some("bundle") => {
                r.format = "STIX 2.1 bundle".into();
                stix_bundle(&v, &source, &mut r);
            }
            Ok(v) if v.get("Event").is_some() => {
                r.format = "MISP event".into();
                misp_event(&v, &source, &mut r);
            }
            Ok(_) => r.errors.push(format!(
                "{source}: JSON that is neither a STIX 2.1 bundle nor a MISP event"
            )),
            Err(e) => r.errors.push(e),
        }
        return r;
    }
    r.format = "CSV".into();
    csv_feed(path, &source, &mut r);
    r
}

fn read_json(path: &Path) -> Result<Value, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_reader(std::io::BufReader::new(f))
        .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

fn take(value: &str, context: &str, source: &str, r: &mut FeedReport) {
    if hash_type(value).is_some() {
        r.hashes.push(ioc(value, context, source));
    } else {
        *r.unused
            .entry("not a file hash (used by later checks, not by file checks)".into())
            .or_default() += 1;
    }
}

fn stix_bundle(v: &Value, source: &str, r: &mut FeedReport) {
    let re = regex::Regex::new(r"(?i)file:hashes\.'?(?:SHA-?256|SHA-?1|MD5)'?\s*=\s*'([0-9a-f]+)'")
        .expect("static regex");
    for o in v
        .get("objects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("STIX indicator");
        match ty {
            "indicator" => {
                let pattern = o.get("pattern").and_then(Value::as_str).unwrap_or("");
                let mut any = false;
                for c in re.captures_iter(pattern) {
                    any = true;
                    take(&c[1], name, source, r);
                }
                if !any {
                    *r.unused
                        .entry("STIX indicator without a file-hash pattern".into())
                        .or_default() += 1;
                }
            }
            "file" => {
                for h in o
                    .get("hashes")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    if let Some(h) = h.as_str() {
                        take(h, name, source, r);
                    }
                }
            }
            _ => {}
        }
    }
}

fn misp_event(v: &Value, source: &str, r: &mut FeedReport) {
    let Some(ev) = v.get("Event") else {
        r.errors.push(format!("{source}: no Event object"));
        return;
    };
    let info = ev
        .get("info")
        .and_then(Value::as_str)
        .unwrap_or("MISP event")
        .to_string();
    let mut attrs: Vec<&Value> = ev
        .get("Attribute")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    for o in ev
        .get("Object")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        attrs.extend(
            o.get("Attribute")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    for a in attrs {
        let ty = a.get("type").and_then(Value::as_str).unwrap_or("");
        let val = a.get("value").and_then(Value::as_str).unwrap_or("");
        match ty {
            "md5" | "sha1" | "sha256" => take(val, &info, source, r),
            t if t.starts_with("filename|") => {
                if let Some((_, h)) = val.split_once('|') {
                    take(h, &info, source, r);
                }
            }
            _ => {
                *r.unused
                    .entry(format!("MISP attribute type {ty}"))
                    .or_default() += 1
            }
        }
    }
}

fn csv_feed(path: &Path, source: &str, r: &mut FeedReport) {
    let mut rdr = match csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_path(path)
    {
        Ok(x) => x,
        Err(e) => {
            r.errors.push(format!("{source}: {e}"));
            return;
        }
    };
    let mut col: Option<usize> = None;
    let mut ctx_col: Option<usize> = None;
    for (n, rec) in rdr.records().enumerate() {
        let rec = match rec {
            Ok(x) => x,
            Err(e) => {
                r.errors.push(format!("{source}: line {}: {e}", n + 1));
                continue;
            }
        };
        if n == 0 && !rec.iter().any(|f| hash_type(f).is_some()) {
            // A header row: find the value column.
            let names: Vec<String> = rec.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
            col = names.iter().position(|c| {
                ["indicator", "value", "ioc", "hash", "sha256", "sha1", "md5"].contains(&c.as_str())
            });
            ctx_col = names
                .iter()
                .position(|c| ["context", "description", "comment", "info"].contains(&c.as_str()));
            if col.is_none() {
                r.errors.push(format!(
                    "{source}: header has no indicator/value/hash column"
                ));
                return;
            }
            continue;
        }
        let value = match col {
            Some(c) => rec.get(c).unwrap_or(""),
            None => rec
                .iter()
                .find(|f| hash_type(f).is_some())
                .unwrap_or_else(|| rec.get(0).unwrap_or("")),
        };
        let context = ctx_col.and_then(|c| rec.get(c)).unwrap_or("user IOC feed");
        take(value, context, source, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "8e90ed33c7ee82c0b64078ea36ec95f7420ba435c693b3b3dd728b494abf7dfc";

    #[test]
    fn csv_stix_and_misp() {
        let d = tempfile::tempdir().unwrap();
        let csv = d.path().join("f.csv");
        std::fs::write(&csv, format!("value,type,description\n{H},sha256,shell\n1.2.3.4,ip,c2\nd41d8cd98f00b204e9800998ecf8427e,md5,x\n")).unwrap();
        let r = load(&csv);
        assert_eq!(r.hashes.len(), 2);
        assert_eq!(r.hashes[0].context, "shell");
        assert_eq!(r.unused.values().sum::<usize>(), 1);

        let stix = d.path().join("b.json");
        std::fs::write(
            &stix,
            format!(r#"{{"type":"bundle","id":"bundle--1","objects":[{{"type":"indicator","name":"web shell","pattern":"[file:hashes.'SHA-256' = '{H}']","pattern_type":"stix"}},{{"type":"indicator","pattern":"[ipv4-addr:value = '1.2.3.4']"}}]}}"#),
        )
        .unwrap();
        let r = load(&stix);
        assert_eq!(r.format, "STIX 2.1 bundle");
        assert_eq!(r.hashes.len(), 1);
        assert_eq!(r.hashes[0].context, "web shell");

        let misp = d.path().join("misp");
        std::fs::create_dir(&misp).unwrap();
        std::fs::write(misp.join("manifest.json"), "{}").unwrap();
        std::fs::write(
            misp.join("5f1c.json"),
            format!(r#"{{"Event":{{"info":"Exchange shells","Attribute":[{{"type":"sha256","value":"{H}"}},{{"type":"domain","value":"x.example"}}],"Object":[{{"Attribute":[{{"type":"filename|md5","value":"a.aspx|d41d8cd98f00b204e9800998ecf8427e"}}]}}]}}}}"#),
        )
        .unwrap();
        std::fs::write(misp.join("broken.json"), "{not json").unwrap();
        let r = load(&misp);
        assert_eq!(r.hashes.len(), 2);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.unused.get("MISP attribute type domain"), Some(&1));
    }
}
