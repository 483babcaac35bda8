//! The `drvaudit` command line: arguments in, report out, exit code from the report.
//! No analysis logic lives here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use drvaudit::output::{self, Format};
use drvaudit::pipeline::{self, Settings};
use drvaudit::report::Level;
use drvaudit::rules::RuleSet;

// The analysis makes many short-lived allocations on every worker thread (decoded
// instructions, per-block states, findings); mimalloc's thread-local free lists cost about a
// tenth of the CPU time glibc's allocator did on the benchmark tree (benches/scan_tree.sh).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`, by its place in `mi_option_e` (mimalloc 3's `mimalloc.h`);
/// libmimalloc-sys names no constant for it. A test checks it against the documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 3 keeps freed pages committed for a second (its default purge delay) before it
/// returns them, so each driver's read buffer and findings stayed resident and peak RSS grew
/// with the tree: 41 MB at 1,200 drivers and 51 MB at 4,800 on benches/scan_tree.sh. Ten
/// milliseconds (mimalloc 2's default) still lets the next file reuse the pages: 19 and 22 MB
/// at the same speed. `MIMALLOC_PURGE_DELAY` in the environment still wins.
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: stores an integer option, which mimalloc allows at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) }
    }
}

/// Offline static audit of Windows kernel drivers: untagged and executable pool, pool tags,
/// HVCI hazards; SARIF 2.1.0 or text.
#[derive(Parser)]
#[command(name = "drvaudit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Audit drivers (.sys files, folders, .zip/.cab packages) and drivers carved from dumps.
    Scan(ScanArgs),
    /// List the rules.
    Rules {
        /// Directory of additional rule files.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Print one rule's documentation.
    Explain {
        /// Rule id (DRV1001) or name (untagged-pool-allocation).
        id: String,
        /// Directory of additional rule files.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Read a kernel crash dump without symbols: header, loaded modules, pool tag usage.
    Dump {
        /// The dump file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TagsFormat::Text)]
        format: TagsFormat,
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the pool tag inventory in pooltag.txt format (`Tag - driver.sys - description`).
    Tags {
        /// Files, folders or packages.
        #[arg(required_unless_present = "dump")]
        paths: Vec<PathBuf>,
        /// Crash dump whose loaded drivers are carved and inventoried too (repeatable).
        #[arg(long, value_name = "FILE")]
        dump: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TagsFormat::Text)]
        format: TagsFormat,
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Inputs that cannot be examined do not make the exit code 2.
        #[arg(long)]
        allow_incomplete: bool,
    },
}

#[derive(clap::Args)]
struct ScanArgs {
    /// Files, folders and driver packages to audit.
    paths: Vec<PathBuf>,
    /// Kernel crash dump whose loaded drivers are carved and audited (repeatable).
    #[arg(long, value_name = "FILE")]
    dump: Vec<PathBuf>,
    /// Pool usage export: `!poolused` text, PoolMon log or screen, CSV or JSON (repeatable).
    #[arg(long, value_name = "FILE")]
    pool: Vec<PathBuf>,
    /// pooltag.txt naming tag owners (enables DRV1005 tag-collision).
    #[arg(long, value_name = "FILE")]
    pooltag: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Lowest finding level that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
    /// Directory of additional rule files (same format as rules/).
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Base directory that artifact paths in SARIF are relative to (default: current directory).
    #[arg(long, value_name = "DIR")]
    srcroot: Option<PathBuf>,
    /// Do not show a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Skip call-site analysis: findings from imports, sections and headers only (fastest
    /// triage of very large trees; untagged-pool findings then point at the import).
    #[arg(long)]
    imports_only: bool,
    /// Inputs that cannot be examined (unreadable, corrupt, missing evidence) are still
    /// reported but do not make the exit code 2: for sweeps of whole systems.
    #[arg(long)]
    allow_incomplete: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Note,
    Never,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TagsFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("drvaudit: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_rules(extra: Option<&PathBuf>) -> Result<RuleSet> {
    let mut rules = RuleSet::builtin().context("built-in rules are invalid (a drvaudit bug)")?;
    if let Some(dir) = extra {
        rules.add_dir(dir)?;
    }
    Ok(rules)
}

fn write_output(path: Option<&PathBuf>, text: &str) -> Result<()> {
    match path {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("{}: cannot write output", p.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                // A closed pipe (`drvaudit … | head`) is not a failure of the scan.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("cannot write to standard output"),
            }
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Rules { rules } => {
            let rules = load_rules(rules.as_ref())?;
            write_output(None, &drvaudit::rules::table(&rules))?;
            Ok(0)
        }
        Command::Explain { id, rules } => {
            let rules = load_rules(rules.as_ref())?;
            let Some(rule) = rules.get(&id) else {
                bail!("no rule `{id}`; `drvaudit rules` lists them");
            };
            write_output(None, &drvaudit::rules::explain(rule))?;
            Ok(0)
        }
        Command::Dump {
            file,
            format,
            output,
        } => {
            let dump = drvaudit::dump::Dump::open(&file)?;
            let report = drvaudit::dump::report(&dump);
            let text = match format {
                TagsFormat::Text => drvaudit::dump::render_text(&report),
                TagsFormat::Json => {
                    let mut s = serde_json::to_string_pretty(&report)
                        .context("cannot encode the dump report")?;
                    s.push('\n');
                    s
                }
            };
            write_output(output.as_ref(), &text)?;
            Ok(0)
        }
        Command::Tags {
            paths,
            dump,
            format,
            output,
            allow_incomplete,
        } => {
            let settings = Settings {
                paths,
                dumps: dump,
                pool_files: Vec::new(),
                pooltag: None,
                rules: load_rules(None)?,
                progress: false,
                root: std::env::current_dir().context("cannot read the current directory")?,
                fail_on: None,
                call_sites: true,
                allow_incomplete,
            };
            let (out, name) = open_output(output.as_ref())?;
            let tags = output::text::TagsSink::new(out, format == TagsFormat::Json);
            let mut sink = output::notices::NoticesFirst::new(Box::new(tags), std::io::stderr());
            let (report, written) = pipeline::run(&settings, &mut sink);
            drop(sink);
            wrote(written, &name)?;
            Ok(report.exit_code as u8)
        }
        Command::Scan(args) => {
            if args.paths.is_empty() && args.dump.is_empty() {
                bail!("nothing to scan: give files, folders or packages, or --dump FILE");
            }
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let root = match &args.srcroot {
                Some(r) => std::path::absolute(r)
                    .with_context(|| format!("{}: bad --srcroot", r.display()))?,
                None => cwd,
            };
            let settings = Settings {
                paths: args.paths,
                dumps: args.dump,
                pool_files: args.pool,
                pooltag: args.pooltag,
                rules: load_rules(args.rules.as_ref())?,
                progress: !args.no_progress,
                root,
                fail_on: match args.fail_on {
                    FailOn::Error => Some(Level::Error),
                    FailOn::Warning => Some(Level::Warning),
                    FailOn::Note => Some(Level::Note),
                    FailOn::Never => None,
                },
                call_sites: !args.imports_only,
                allow_incomplete: args.allow_incomplete,
            };
            let (out, name) = open_output(args.output.as_ref())?;
            let inner = args
                .format
                .sink(out, &settings.rules.enabled(), &settings.root);
            let mut sink = output::notices::NoticesFirst::new(inner, std::io::stderr());
            let (report, written) = pipeline::run(&settings, &mut sink);
            drop(sink);
            wrote(written, &name)?;
            Ok(report.exit_code as u8)
        }
    }
}

/// Where a report goes: the file of `-o`, else standard output; with a name for errors.
fn open_output(path: Option<&PathBuf>) -> Result<(Box<dyn Write + Send>, String)> {
    match path {
        Some(p) => {
            let file = std::fs::File::create(p)
                .with_context(|| format!("{}: cannot write output", p.display()))?;
            Ok((Box::new(file), p.display().to_string()))
        }
        None => Ok((Box::new(std::io::stdout()), String::new())),
    }
}

/// What writing the report came to: a closed standard output (`drvaudit … | head`) is not a
/// failure of the scan; any other error is.
fn wrote(written: std::io::Result<()>, name: &str) -> Result<()> {
    match written {
        Err(e) if name.is_empty() && e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) if name.is_empty() => Err(e).context("cannot write to standard output"),
        Err(e) => Err(e).with_context(|| format!("{name}: cannot write output")),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    /// The option index is mimalloc's purge delay: nothing has set it in this process, and it
    /// reads as mimalloc 3's documented default of 1000 ms (the neighbouring options default
    /// to 0).
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_option_index() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("SKIPPED: MIMALLOC_PURGE_DELAY is set");
            return;
        }
        // SAFETY: reads an integer option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
