//! `exhunt report`: saved results re-rendered, several merged into one report (loading and
//! merging live in `exhunt_report::saved`).

use anyhow::{Result, bail};
use exhunt_report::saved;

use crate::cli::ReportArgs;
use crate::output::{text_options, write_result};
use crate::upload::{UPLOAD_FAILED, Uploader};

pub(crate) fn report(args: ReportArgs) -> Result<u8> {
    let uploader = Uploader::from_args(&args.upload)?;
    let mut results = Vec::new();
    for path in &args.results {
        let (r, warnings) = saved::load(path)?;
        for w in warnings {
            eprintln!("exhunt: {w}");
        }
        results.push((path.display().to_string(), r));
    }
    let mut uploaded = true;
    if let Some(up) = &uploader {
        for (_, r) in &results {
            uploaded &= up.upload_scan(r, false);
        }
    }
    let Some((result, warnings)) = saved::merge(results) else {
        bail!("no result given");
    };
    for w in warnings {
        eprintln!("exhunt: {w}");
    }
    let text = text_options(args.no_color, args.verbose, args.output.is_some());
    write_result(
        &result,
        args.format.into(),
        text,
        args.output.as_deref(),
        true,
    )?;
    let code = result.verdict.exit_code() as u8;
    Ok(if uploaded { code } else { code + UPLOAD_FAILED })
}
