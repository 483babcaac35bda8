//! The `drvaudit` command line: arguments in, report out, exit code from the report.
//! No analysis logic lives here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use drvaudit::config::{self, GateArgs};
use drvaudit::output::sarif::SarifOptions;
use drvaudit::output::{self, Format};
use drvaudit::pipeline::{self, Settings};
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
    /// Show Rust's own panic messages and backtraces (with RUST_BACKTRACE=1) when drvaudit or a
    /// library fails on an input; without it such a failure is only a notice. Also
    /// DRVAUDIT_DEBUG=1.
    #[arg(long, global = true)]
    debug: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Audit drivers (.sys files, folders, .zip/.cab packages) and drivers carved from dumps.
    Scan(ScanArgs),
    /// Write a baseline: the SARIF log of a scan, for later scans to compare with
    /// (`scan --baseline FILE`). Exit code 0 unless the audit is incomplete (2).
    Baseline {
        /// Files, folders and driver packages to audit.
        paths: Vec<PathBuf>,
        /// Kernel crash dump whose loaded drivers are carved and audited (repeatable).
        #[arg(long, value_name = "FILE")]
        dump: Vec<PathBuf>,
        /// Where to write the log.
        #[arg(
            short,
            long,
            value_name = "FILE",
            default_value = "drvaudit-baseline.sarif"
        )]
        output: PathBuf,
        /// Base directory that artifact paths are relative to (default: current directory).
        #[arg(long, value_name = "DIR")]
        srcroot: Option<PathBuf>,
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Join the SARIF logs of a sharded scan (`scan --shard I/N`) into one run.
    Merge {
        /// The shards' logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Where to write the merged log (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Print the effective settings (config file, flags, rules) and where each came from.
    Config {
        #[command(flatten)]
        gate: GateArgs,
    },
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
    /// One row per driver: name, version, company, machine, signature class and signer,
    /// Authenticode SHA-256, blocklist entries. Exit code 0, or 2 when an input could not be
    /// read.
    Identify {
        /// Files, folders or packages.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Blocklist: a LOLDrivers YAML folder, drivers.json or drivers.csv, or a SiPolicy XML
        /// (repeatable; adds to the config's `blocklist`).
        #[arg(long, value_name = "PATH")]
        blocklist: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TagsFormat::Text)]
        format: TagsFormat,
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Configuration file (for its `blocklist`; default: drvaudit.toml found as `scan`
        /// finds it).
        #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
        config: Option<PathBuf>,
        /// Ignore any configuration file.
        #[arg(long)]
        no_config: bool,
        /// Inputs that cannot be examined do not make the exit code 2.
        #[arg(long)]
        allow_incomplete: bool,
    },
    /// Print the pool tag inventory in pooltag.txt format (`Tag - driver.sys - description`).
    Tags {
        /// Files, folders or packages (optional with --dump).
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
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Base directory that artifact paths in SARIF are relative to (default: current directory).
    #[arg(long, value_name = "DIR")]
    srcroot: Option<PathBuf>,
    /// Do not show a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Text: one compiler-style line per finding (`path@0xrva: level[ID] name: message`), for
    /// grep and editors, instead of the report grouped by driver.
    #[arg(long)]
    oneline: bool,
    /// Text: repeat each rule's reason under every finding.
    #[arg(short, long)]
    verbose: bool,
    /// Text: print only findings at or above this level (the exit code still counts all).
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = MinLevel::Note)]
    min_level: MinLevel,
    /// Text: counts per rule and per driver after the findings.
    #[arg(long)]
    statistics: bool,
    /// Colour: `auto` colours a terminal only (never a file given with -o), and honours
    /// NO_COLOR and CLICOLOR_FORCE.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    color: ColorWhen,
    /// Skip call-site analysis: findings from imports, sections and headers only (fastest
    /// triage of very large trees; untagged-pool findings then point at the import).
    #[arg(long)]
    imports_only: bool,
    /// Audit only part I of N of the inputs (deterministic: the same split on every machine);
    /// `drvaudit merge` joins the parts' SARIF logs. `JOB_COMPLETION_INDEX` style: 1/4 … 4/4.
    #[arg(long, value_name = "I/N", default_value = "1/1")]
    shard: pipeline::Shard,
    /// SARIF `runAutomationDetails.id`: keeps several uploads for one commit apart (a matrix
    /// of shards, one per package set).
    #[arg(long, value_name = "ID", default_value = "drvaudit/")]
    automation_id: String,
    #[command(flatten)]
    gate: GateArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MinLevel {
    Note,
    Warning,
    Error,
}

impl From<MinLevel> for drvaudit::rules::Level {
    fn from(m: MinLevel) -> Self {
        match m {
            MinLevel::Note => drvaudit::rules::Level::Note,
            MinLevel::Warning => drvaudit::rules::Level::Warning,
            MinLevel::Error => drvaudit::rules::Level::Error,
        }
    }
}

/// `--color`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Whether standard output gets colour: `always` and `never` as said; `auto` only when the
/// report goes to standard output and anstream's rules allow it there (a terminal, NO_COLOR
/// unset or empty, CLICOLOR_FORCE forcing it even into a pipe, TERM not `dumb`).
fn use_color(when: ColorWhen, to_file: bool) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto if to_file => false,
        ColorWhen::Auto => {
            anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TagsFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    // A panic while analysing an input is reported as a notice about that input; its text and
    // backtrace are for debugging only.
    drvaudit::util::guard::install_panic_hook(cli.debug || debug_env());
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("drvaudit: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `DRVAUDIT_DEBUG` set to anything but empty or `0`.
fn debug_env() -> bool {
    std::env::var_os("DRVAUDIT_DEBUG").is_some_and(|v| !v.is_empty() && v != "0")
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
            let color = use_color(ColorWhen::Auto, false);
            write_output(None, &drvaudit::rules::explain::explain(rule, color))?;
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
            if paths.is_empty() && dump.is_empty() {
                bail!("nothing to inventory: give files, folders or packages, or --dump FILE");
            }
            let mut settings = base_settings(paths, dump, load_rules(None)?)?;
            settings.allow_incomplete = allow_incomplete;
            let (out, name) = open_output(output.as_ref())?;
            let tags = output::text::TagsSink::new(out, format == TagsFormat::Json);
            let mut sink = output::notices::NoticesFirst::new(Box::new(tags), std::io::stderr());
            let (report, written) = pipeline::run(&settings, &mut sink);
            drop(sink);
            wrote(written, &name)?;
            Ok(report.exit_code as u8)
        }
        Command::Identify {
            paths,
            blocklist,
            format,
            output,
            config,
            no_config,
            allow_incomplete,
        } => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let gate = config::GateArgs {
                config,
                no_config,
                blocklist,
                ..Default::default()
            };
            let resolved = config::resolve(&gate, &cwd)?;
            let mut settings = base_settings(paths, Vec::new(), RuleSet::none())?;
            settings.allow_incomplete = allow_incomplete;
            settings.call_sites = false;
            settings.identify = true;
            settings.blocklists = resolved.blocklists;
            let (out, name) = open_output(output.as_ref())?;
            let rows = output::identify::IdentifySink::new(out, format == TagsFormat::Json);
            let mut sink = output::notices::NoticesFirst::new(Box::new(rows), std::io::stderr());
            let (report, written) = pipeline::run(&settings, &mut sink);
            drop(sink);
            wrote(written, &name)?;
            Ok(report.exit_code as u8)
        }
        Command::Merge { logs, output, gate } => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let resolved = config::resolve(&gate, &cwd)?;
            let (out, name) = open_output(output.as_ref())?;
            match output::merge::merge(&logs, &resolved.rules, out) {
                Ok(exit) => Ok(exit.clamp(0, 2) as u8),
                Err(output::merge::MergeError::Write(e)) => {
                    wrote(Err(e), &name)?;
                    Ok(0)
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Config { gate } => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let resolved = config::resolve(&gate, &cwd)?;
            write_output(None, &config::render(&resolved))?;
            Ok(0)
        }
        Command::Baseline {
            paths,
            dump,
            output,
            srcroot,
            gate,
        } => {
            let mut gate = gate;
            // A baseline is written whatever it holds: only an incomplete audit fails it.
            gate.fail_on = Some(config::FailOn::Never);
            gate.baseline = None;
            let (settings, _) = scan_settings(
                paths,
                dump,
                srcroot.as_ref(),
                &gate,
                false,
                false,
                Default::default(),
            )?;
            // Every result on its own: later scans match them one by one.
            let sarif = SarifOptions::default();
            let text = Default::default();
            let report = scan_to(&settings, Format::Sarif, Some(&output), sarif, text)?;
            Ok(report.exit_code as u8)
        }
        Command::Scan(args) => {
            if args.paths.is_empty() && args.dump.is_empty() {
                bail!("nothing to scan: give files, folders or packages, or --dump FILE");
            }
            let (settings, max_results) = scan_settings(
                args.paths,
                args.dump,
                args.srcroot.as_ref(),
                &args.gate,
                !args.no_progress,
                args.imports_only,
                args.shard,
            )?;
            let sarif = SarifOptions {
                automation_id: args.automation_id,
                max_results,
            };
            let text = output::text::TextOptions {
                oneline: args.oneline,
                verbose: args.verbose,
                color: use_color(args.color, args.output.is_some()),
                min_level: args.min_level.into(),
                statistics: args.statistics,
            };
            let report = scan_to(&settings, args.format, args.output.as_ref(), sarif, text)?;
            Ok(report.exit_code as u8)
        }
    }
}

/// Settings for a scan of `paths` and `dumps` with `rules` and drvaudit's defaults otherwise.
fn base_settings(paths: Vec<PathBuf>, dumps: Vec<PathBuf>, rules: RuleSet) -> Result<Settings> {
    Ok(Settings {
        paths,
        dumps,
        pool_files: Vec::new(),
        pooltag: None,
        rules,
        progress: false,
        root: std::env::current_dir().context("cannot read the current directory")?,
        fail_on: None,
        call_sites: true,
        allow_incomplete: false,
        suppressions: Default::default(),
        baseline: None,
        shard: Default::default(),
        symbols: Vec::new(),
        source_map: Vec::new(),
        blocklists: Vec::new(),
        identify: false,
        input_timeout: Some(drvaudit::util::deadline::DEFAULT_LIMIT),
    })
}

/// The settings of a scan: the gate's flags resolved with the config file; with the SARIF
/// result limit.
fn scan_settings(
    paths: Vec<PathBuf>,
    dumps: Vec<PathBuf>,
    srcroot: Option<&PathBuf>,
    gate: &GateArgs,
    progress: bool,
    imports_only: bool,
    shard: pipeline::Shard,
) -> Result<(Settings, usize)> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let resolved = config::resolve(gate, &cwd)?;
    let root = match srcroot {
        Some(r) => {
            std::path::absolute(r).with_context(|| format!("{}: bad --srcroot", r.display()))?
        }
        None => cwd,
    };
    let settings = Settings {
        paths,
        dumps,
        pool_files: resolved.pool,
        pooltag: resolved.pooltag,
        rules: resolved.rules,
        progress,
        root,
        fail_on: resolved.fail_on,
        call_sites: !imports_only,
        allow_incomplete: resolved.allow_incomplete,
        suppressions: std::sync::Arc::new(resolved.suppressions),
        baseline: resolved.baseline,
        shard,
        symbols: resolved.symbols,
        source_map: resolved.source_map,
        blocklists: resolved.blocklists,
        identify: false,
        input_timeout: resolved.input_timeout,
    };
    Ok((settings, resolved.max_results))
}

/// Runs the scan into `format` at `output` (standard output without it), notices first on
/// standard error.
fn scan_to(
    settings: &Settings,
    format: Format,
    output: Option<&PathBuf>,
    sarif: SarifOptions,
    text: output::text::TextOptions,
) -> Result<drvaudit::report::Report> {
    let (out, name) = open_output(output)?;
    let inner = format.sink(out, &settings.rules.enabled(), &settings.root, sarif, text);
    let mut sink = output::notices::NoticesFirst::new(inner, std::io::stderr());
    let (report, written) = pipeline::run(settings, &mut sink);
    drop(sink);
    wrote(written, &name)?;
    Ok(report)
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
