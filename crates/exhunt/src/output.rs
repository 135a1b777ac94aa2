//! Writing results and drawing progress: the only places the binary prints, apart from
//! warnings. Colours follow one rule (`color`), whatever the command.

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use exhunt_report::{Format, TextOptions, render};

/// Whether to colour a stream: not with `--no-color`, not when `NO_COLOR` is set
/// (no-color.org), not when the stream is not a terminal.
pub(crate) fn color(no_color: bool, terminal: bool) -> bool {
    !no_color && std::env::var_os("NO_COLOR").is_none() && terminal
}

/// Text options for a result going to `output` (a file) or stdout.
pub(crate) fn text_options(no_color: bool, verbose: bool, to_file: bool) -> TextOptions {
    TextOptions {
        color: color(no_color, !to_file && io::stdout().is_terminal()),
        verbose,
    }
}

/// Renders to a file or to stdout (a closed pipe is not an error).
pub(crate) fn write_result(
    result: &exhunt_model::ScanResult,
    format: Format,
    text: TextOptions,
    output: Option<&std::path::Path>,
    quiet: bool,
) -> Result<()> {
    match output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = io::BufWriter::new(f);
            render(result, format, text, &mut w)
                .with_context(|| format!("writing {}", path.display()))?;
            w.flush()?;
            if !quiet {
                eprintln!(
                    "exhunt: {} — result written to {}",
                    result.verdict.label(),
                    path.display()
                );
            }
        }
        None => {
            let stdout = io::stdout();
            let mut w = io::BufWriter::new(stdout.lock());
            match render(result, format, text, &mut w).and_then(|_| w.flush()) {
                Ok(()) => {}
                // A closed pipe (`| head`) is not an error of the scan.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e).context("writing the result"),
            }
        }
    }
    Ok(())
}

/// A progress bar on stderr with exhunt's style and the given counter template.
pub(crate) fn bar(counters: &str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {{elapsed_precise}} [{{wide_bar}}] {counters} {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

pub(crate) fn spawn_progress(
    p: Arc<exhunt_checks::Progress>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = bar("{pos}/{len} files");
        while !done.load(Ordering::Relaxed) {
            bar.set_length(p.files_total.load(Ordering::Relaxed));
            bar.set_position(p.files_done.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{} MiB read, {} findings",
                p.bytes_done.load(Ordering::Relaxed) >> 20,
                p.findings.load(Ordering::Relaxed)
            ));
            std::thread::sleep(Duration::from_millis(150));
        }
        bar.finish_and_clear();
    })
}
