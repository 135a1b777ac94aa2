//! Output is not an attack surface.
//!
//! File names, URLs, user agents, account names and every other string that comes from evidence
//! are chosen by the attacker. Printed raw, `ESC ] 0 ; … BEL` sets the analyst's window title,
//! `ESC [ … m` and a carriage return repaint what the screen shows — a verdict line included — and
//! a right-to-left override reverses a file name. A cell starting with `=` runs as a formula when
//! the CSV is opened in a spreadsheet. So the text output shows every control character (C0, DEL,
//! C1) and the bidirectional overrides as visible escapes, and CSV cells that a spreadsheet would
//! evaluate get a leading apostrophe (the OWASP CSV-injection rule). JSON escapes control
//! characters itself; HTML escapes markup (`html::esc`) and shows control characters the same way.

use std::borrow::Cow;

use exhunt_model::ScanResult;

fn visible(c: char) -> bool {
    !(c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
}

/// `s` with control characters and bidirectional overrides written as `\x1b` / `\u{202e}`.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if s.chars().all(visible) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if visible(c) {
            o.push(c);
        } else if (c as u32) < 0x100 {
            o.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            o.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(o)
}

/// A copy of the result whose every string is safe to print on a terminal. Done on the data,
/// not at each place the text renderer prints, so that no field can be forgotten.
pub fn for_terminal(result: &ScanResult) -> ScanResult {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                if let Cow::Owned(o) = terminal(s) {
                    *s = o;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(m) => m.values_mut().for_each(walk),
            _ => {}
        }
    }
    match serde_json::to_value(result) {
        Ok(mut v) => {
            walk(&mut v);
            serde_json::from_value(v).unwrap_or_else(|_| result.clone())
        }
        Err(_) => result.clone(),
    }
}

/// JSON text with the bidirectional overrides written as `\u202e` escapes: the same JSON value,
/// but a file name cannot reverse itself when the output is shown on a terminal. serde_json
/// already escapes control characters; these characters only occur inside JSON strings.
pub fn json_text(json: &str) -> Cow<'_, str> {
    if !json.contains(|c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')) {
        return Cow::Borrowed(json);
    }
    let mut o = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            o.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            o.push(c);
        }
    }
    Cow::Owned(o)
}

/// A CSV cell a spreadsheet will not evaluate: one that starts with `=`, `+`, `-`, `@`, a tab or
/// a carriage return gets a leading apostrophe.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(terminal("plain/path.aspx"), "plain/path.aspx");
        assert_eq!(
            terminal("a\u{1b}]0;owned\u{7}b\rc\u{7f}\u{9b}31m"),
            "a\\x1b]0;owned\\x07b\\x0dc\\x7f\\x9b31m"
        );
        assert_eq!(terminal("x\u{202e}xpsa.gpj"), "x\\u{202e}xpsa.gpj");
        assert_eq!(terminal("line\nbreak"), "line\\x0abreak");
    }

    #[test]
    fn json_keeps_its_value_and_loses_the_override() {
        let json = serde_json::to_string(&"a\u{202e}b").unwrap();
        let safe = json_text(&json);
        assert_eq!(safe, "\"a\\u202eb\"");
        assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), "a\u{202e}b");
    }

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("2021-03-03T02:14:05Z"), "2021-03-03T02:14:05Z");
        assert_eq!(csv_cell(""), "");
    }
}
