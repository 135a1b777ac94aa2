//! PowerShell for the Exchange Management Shell, written so that hostile values stay data.
//!
//! Every value that comes from evidence (a URL, a mailbox, an account, a path) is chosen by the
//! attacker. In a generated script it is only ever a single-quoted string literal built by
//! [`quote`]: a quote is doubled, and everything that could end the literal or the line —
//! newlines, other control characters, the typographic quotes PowerShell also accepts as single
//! quotes (`‘ ’ ‚ ‛`), bidirectional overrides — is written as `[char]0xNNNN` outside the
//! literal. `$()`, backticks and `"` have no meaning inside single quotes. Hostile values are
//! never put in comments.

/// Characters that must not appear inside a single-quoted PowerShell literal.
fn encoded(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2018}'..='\u{201b}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
        )
}

/// `s` as a PowerShell expression that evaluates to exactly `s`: `'it''s'`, or
/// `('a' + [char]0x000a + 'b')` when `s` holds characters that cannot be in a literal.
pub fn quote(s: &str) -> String {
    if !s.chars().any(encoded) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut parts: Vec<String> = Vec::new();
    let mut lit = String::new();
    for c in s.chars() {
        if encoded(c) {
            if !lit.is_empty() {
                parts.push(format!("'{}'", lit.replace('\'', "''")));
                lit.clear();
            }
            parts.push(format!("[char]0x{:04x}", c as u32));
        } else {
            lit.push(c);
        }
    }
    if !lit.is_empty() {
        parts.push(format!("'{}'", lit.replace('\'', "''")));
    }
    // `[char] + [char]` would add numbers: start with a string so `+` concatenates.
    format!("([string]'' + {})", parts.join(" + "))
}

/// A script for one action: stop on the first error, refuse to run twice (a marker file under
/// `%ProgramData%\exhunt\remediate`), refuse to overwrite a before-state an earlier run left,
/// record the current state before changing it.
///
/// `record` is PowerShell that outputs the objects to keep (written with `Export-Clixml`
/// beside the marker); `change` gets them as `$before`. Both are built from [`quote`]d values.
pub fn script(plan_id: &str, action_id: &str, what: &str, record: &str, change: &str) -> String {
    // plan_id and action_id are ours (hex, `A3`); `what` is our own wording, never evidence.
    let name = format!("{plan_id}-{action_id}");
    format!(
        "# exhunt remediate, plan {plan_id}, action {action_id}: {what}\n\
         # Run in the Exchange Management Shell. Records the current state first; refuses to run twice.\n\
         $ErrorActionPreference = 'Stop'\n\
         $exhuntState = Join-Path $env:ProgramData 'exhunt\\remediate'\n\
         New-Item -ItemType Directory -Force -Path $exhuntState | Out-Null\n\
         $exhuntMarker = Join-Path $exhuntState '{name}.done'\n\
         if (Test-Path -LiteralPath $exhuntMarker) {{ throw ('exhunt: action {action_id} already ran; its before-state is in ' + (Join-Path $exhuntState '{name}.before.xml')) }}\n\
         $exhuntBefore = Join-Path $exhuntState '{name}.before.xml'\n\
         if (Test-Path -LiteralPath $exhuntBefore) {{ throw ('exhunt: a before-state of action {action_id} is already in ' + $exhuntBefore + ' (an earlier run stopped half way): keep it, move it elsewhere, then run again') }}\n\
         $before = @({record})\n\
         $before | Export-Clixml -LiteralPath $exhuntBefore\n\
         {change}\n\
         Set-Content -LiteralPath $exhuntMarker -Value (Get-Date -Format o)\n"
    )
}

/// The `record` part of a script made by [`script`].
pub fn record_of(script: &str) -> Option<&str> {
    let (_, rest) = script.split_once("\n$before = @(")?;
    let (record, _) = rest.split_once(")\n$before | Export-Clixml")?;
    Some(record)
}
