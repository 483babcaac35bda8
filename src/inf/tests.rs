use super::*;

const SAMPLE: &str = r#"; a test INF
[Version]
Signature   = "$Windows NT$"
Class       = Net
ClassGuid   = {4D36E972-E325-11CE-BFC1-08002BE10318}
Provider    = %Mfg%
DriverVer   = 02/29/2024,1.2.3.4
CatalogFile = all.cat
CatalogFile.NTarm64 = arm.cat

[Manufacturer]
%Mfg% = Models, NTamd64.10.0...14393, NTarm64, NTx86

[Models.NTamd64.10.0...14393]
%Dev% = Install, PCI\VEN_1234

[Models.NTarm64]
%Dev% = Install, PCI\VEN_1234

[models.ntx86]
%Dev% = Install.Old, PCI\VEN_1234

[Install.NT]
CopyFiles = Files.Sys, @extra.dll

[Install.NTarm64]
CopyFiles = Files.Sys
CopyFiles = Files.Arm

[Install.NTarm64.Services]
AddService = drv, 2, Service

[Install.NT.Services]
AddService = drv, 2, Service

[Install.NT.CoInstallers]
CopyFiles = Co.Files

[Files.Sys]
drv.sys
renamed.sys, orig.sys

[Files.Arm]
arm.bin

[Co.Files]
co.dll

[Service]
ServiceType   = 1
ServiceBinary = %12%\drv.sys

[DestinationDirs]
DefaultDestDir = 10, x
Files.Sys      = 12
Co.Files       = 11

[SourceDisksNames]
1 = %Disk%,,,\sub
2 = %Disk%

[SourceDisksFiles]
drv.sys   = 1
orig.sys  = 1,x
extra.dll = 2
co.dll    = 3

[SourceDisksFiles.arm64]
drv.sys = 2, arm
arm.bin = 2

[Strings]
Mfg  = "Contoso"
Dev  = "Contoso Device"
Disk = "Disk 1"

[Strings.0407]
Dev = "Gerät"
"#;

fn inf(text: &str) -> Inf {
    Inf::parse(text.as_bytes()).unwrap()
}

fn kinds(p: &[Problem]) -> Vec<(usize, ProblemKind)> {
    p.iter().map(|p| (p.line, p.kind.clone())).collect()
}

#[test]
fn version_catalogs_and_models() {
    let i = inf(SAMPLE);
    let v = i.version();
    assert_eq!(v.line, Some(2));
    assert_eq!(v.provider.as_deref(), Some("Contoso"));
    assert_eq!(
        v.driver_ver,
        Some(Ok(DriverVer {
            month: 2,
            day: 29,
            year: 2024,
            version: Some([1, 2, 3, 4])
        }))
    );
    assert_eq!(i.catalog_file(Arch::Amd64).unwrap().file, "all.cat");
    assert_eq!(i.catalog_file(Arch::Arm64).unwrap().file, "arm.cat");
    let m = &i.manufacturers()[0];
    assert_eq!(
        (m.name.as_str(), m.models.as_str(), m.line),
        ("Contoso", "Models", 12)
    );
    assert_eq!(m.decorations[0].arch, Some(Arch::Amd64));
    assert_eq!(
        (
            m.decorations[0].major,
            m.decorations[0].minor,
            m.decorations[0].build
        ),
        (Some(10), Some(0), Some(14393))
    );
    let names = |a| {
        i.models_sections(a)
            .into_iter()
            .map(|m| (m.section, m.exists))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(Arch::Amd64),
        vec![("Models.NTamd64.10.0...14393".to_string(), true)]
    );
    assert_eq!(names(Arch::X86), vec![("Models.NTx86".to_string(), true)]);
    assert!(names(Arch::Arm).is_empty());
}

#[test]
fn install_resolution_copies_and_services() {
    let i = inf(SAMPLE);
    let inst = i.install_sections(Arch::Amd64);
    assert_eq!(
        inst[0].resolved.as_deref(),
        Some("Install.NT"),
        ".NT serves amd64 when there is no .NTamd64"
    );
    assert_eq!(
        i.install_sections(Arch::Arm64)[0].resolved.as_deref(),
        Some("Install.NTarm64")
    );
    let files = |a| {
        i.copied_files(a)
            .into_iter()
            .map(|f| (f.source, f.destination, f.package_path, f.line))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        files(Arch::Amd64),
        vec![
            (
                "drv.sys".into(),
                "drv.sys".into(),
                Some("sub/drv.sys".into()),
                40
            ),
            (
                "orig.sys".into(),
                "renamed.sys".into(),
                Some("sub/x/orig.sys".into()),
                41
            ),
            (
                "extra.dll".into(),
                "extra.dll".into(),
                Some("extra.dll".into()),
                24
            ),
            ("co.dll".into(), "co.dll".into(), Some("co.dll".into()), 47),
        ]
    );
    let dirs: Vec<Option<String>> = i
        .copied_files(Arch::Amd64)
        .into_iter()
        .map(|f| f.destination_dir)
        .collect();
    assert_eq!(
        dirs,
        vec![
            Some("12".into()),
            Some("12".into()),
            Some("10,x".into()),
            Some("11".into())
        ]
    );
    // ARM64: SourceDisksFiles.arm64 is looked up before SourceDisksFiles.
    let arm = files(Arch::Arm64);
    assert_eq!(arm[0].2.as_deref(), Some("arm/drv.sys"));
    assert_eq!(arm.len(), 3);
    let s = &i.services(Arch::Arm64)[0];
    assert_eq!(
        (
            s.name.as_str(),
            s.services_section.as_str(),
            s.binary.clone()
        ),
        (
            "drv",
            "Install.NTarm64.Services",
            Some(("%12%\\drv.sys".to_string(), 51))
        )
    );
}

#[test]
fn problems_of_a_package() {
    let i = inf(SAMPLE);
    let pkg: Vec<String> = ["sub/drv.sys", "SUB\\X\\orig.sys", "extra.dll", "all.cat"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let p = i.problems(Arch::Amd64, Some(&pkg));
    assert_eq!(
        kinds(&p),
        vec![
            (0, ProblemKind::Utf8WithoutBom),
            (
                47,
                ProblemKind::FileMissingFromPackage {
                    file: "co.dll".into(),
                    path: "co.dll".into()
                }
            ),
            (
                66,
                ProblemKind::UnknownSourceDisk {
                    file: "co.dll".into(),
                    disk: "3".into()
                }
            ),
        ]
    );
    // ARM: no models section for it, and no catalog named for it is in the package.
    let p = i.problems(Arch::Arm, None);
    assert!(kinds(&p).contains(&(
        12,
        ProblemKind::NoModelsForArchitecture {
            arch: Arch::Arm,
            models: "Models".into()
        }
    )));
    let p = i.problems(Arch::Arm64, Some(&pkg));
    assert!(kinds(&p).contains(&(
        9,
        ProblemKind::CatalogMissingFromPackage {
            file: "arm.cat".into()
        }
    )));
    assert!(kinds(&p).contains(&(
        44,
        ProblemKind::FileMissingFromPackage {
            file: "arm.bin".into(),
            path: "arm.bin".into()
        }
    )));
}

#[test]
fn static_problems_have_lines() {
    let text = "[Version]\nSignature=\"$Windows 95$\"\nDriverVer=13/01/2020,1.0.0.70000\n[Manufacturer]\nM=Mdl,NTamd64,NTbogus\n[DefaultInstall]\nCopyFiles=Nope,@a.sys\n[DefaultInstall.Services]\nAddService=s,,S\n[S]\nServiceBinary=%12%\\other.sys\nx=%undefined%\n";
    let p = inf(text).problems(Arch::Amd64, Some(&[]));
    let k = kinds(&p);
    for want in [
        (
            2,
            ProblemKind::InvalidSignature {
                value: "$Windows 95$".into(),
            },
        ),
        (
            3,
            ProblemKind::MalformedDriverVer {
                value: "13/01/2020,1.0.0.70000".into(),
                why: "month 13 in \"13/01/2020\"".into(),
            },
        ),
        (1, ProblemKind::MissingCatalogFile { arch: Arch::Amd64 }),
        (
            5,
            ProblemKind::InvalidDecoration {
                value: "NTbogus".into(),
            },
        ),
        (
            5,
            ProblemKind::ModelsSectionMissing {
                section: "Mdl.NTamd64".into(),
            },
        ),
        (
            7,
            ProblemKind::CopyFilesSectionMissing {
                section: "Nope".into(),
            },
        ),
        (
            7,
            ProblemKind::NotInSourceDisksFiles {
                file: "a.sys".into(),
            },
        ),
        (
            7,
            ProblemKind::FileMissingFromPackage {
                file: "a.sys".into(),
                path: "a.sys".into(),
            },
        ),
        (
            11,
            ProblemKind::ServiceBinaryNotCopied {
                service: "s".into(),
                binary: "%12%\\other.sys".into(),
            },
        ),
        (
            12,
            ProblemKind::UnresolvedString {
                key: "undefined".into(),
            },
        ),
    ] {
        assert!(k.contains(&want), "{want:?} not in {k:#?}");
    }
    let p = inf("[Version]\nSignature=\"$CHICAGO$\"\n").problems(Arch::X86, None);
    assert!(kinds(&p).contains(&(1, ProblemKind::MissingDriverVer)));
    let p = inf("[Strings]\na=b\n").problems(Arch::X86, None);
    assert!(kinds(&p).contains(&(0, ProblemKind::MissingVersionSection)));
    for bad in [
        "1/1/2020",
        "02/30/2021",
        "01/01/2020,1.2.3.4.5",
        "01/01/2020,1.x",
        "01-01-20",
    ] {
        assert!(
            parse_driver_ver(&bad.split(',').map(String::from).collect::<Vec<_>>()).is_err(),
            "{bad}"
        );
    }
    assert!(parse_driver_ver(&["01-31-2020".into(), "4.25".into()]).is_ok());
}

#[test]
fn strings_locale_merge_and_case() {
    let i = inf(SAMPLE);
    assert_eq!(
        i.section("models.NTAMD64.10.0...14393").unwrap().entries[0]
            .key
            .as_deref(),
        Some("Contoso Device")
    );
    let de = Inf::parse_with(
        SAMPLE.as_bytes(),
        &Options {
            locale: Some(0x0407),
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(
        de.section("Models.NTarm64").unwrap().entries[0]
            .key
            .as_deref(),
        Some("Gerät")
    );
    assert_eq!(
        de.version().provider.as_deref(),
        Some("Contoso"),
        "keys missing in the locale fall back to [Strings]"
    );
    // Same-named sections merge; the first definition of a key wins.
    let i = inf(
        "[A]\nk=1\n[b]\nx=0\n[a]\nk=2\nj=3\n[Strings]\ns=one\nS=two\n[X]\nv=%S%,%%,100%,%s%%s%\n",
    );
    let a = i.section("A").unwrap();
    assert_eq!(
        (
            a.header_lines.clone(),
            a.entries.len(),
            a.get("K").unwrap().values[0].as_str()
        ),
        (vec![1, 5], 3, "1")
    );
    assert_eq!(
        i.section("x").unwrap().entries[0].values,
        vec!["one", "%", "100%", "oneone"]
    );
}

#[test]
fn hostile_inputs_are_bounded() {
    // Substitution is one level: a self-referencing or doubling table cannot loop or explode.
    let mut t = String::from("[Strings]\na=\"%a%%a%\"\nb=\"%c%\"\nc=\"%b%\"\n[X]\nv=%a%,%b%\n");
    let i = inf(&t);
    assert_eq!(
        i.section("X").unwrap().entries[0].values,
        vec!["%a%%a%", "%c%"]
    );
    // A long value many times over stops at the cap.
    t = format!(
        "[Strings]\nbig=\"{}\"\n[X]\nv={}\n",
        "y".repeat(4000),
        "%big%".repeat(800)
    );
    let i = inf(&t);
    assert!(i.section("X").unwrap().entries[0].values[0].len() <= MAX_SUBSTITUTED);
    assert!(kinds(&i.problems(Arch::X86, None))
        .iter()
        .any(|(_, k)| matches!(k, ProblemKind::SubstitutedStringTooLong { .. })));
    // Size, line count and line length caps are typed errors.
    let o = Options {
        limits: Limits {
            max_bytes: 1000,
            max_lines: 10,
            max_line_chars: 50,
            max_logical_chars: 80,
        },
        ..Options::default()
    };
    assert_eq!(
        Inf::parse_with(&vec![b'a'; 1001], &o).unwrap_err(),
        InfError::TooLarge {
            size: 1001,
            limit: 1000
        }
    );
    assert!(matches!(
        Inf::parse_with("x\n".repeat(11).as_bytes(), &o),
        Err(InfError::TooManyLines { .. })
    ));
    assert!(matches!(
        Inf::parse_with(format!("[A]\nk={}", "z".repeat(60)).as_bytes(), &o),
        Err(InfError::LineTooLong { line: 2, .. })
    ));
    let huge = vec![b'x'; (32 << 20) + 1];
    assert!(matches!(Inf::parse(&huge), Err(InfError::TooLarge { .. })));
    // UTF-16 without a BOM parses like the text; garbage never panics.
    let le: Vec<u8> = SAMPLE.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let i = Inf::parse(&le).unwrap();
    assert_eq!(i.encoding, Encoding::Utf16Le);
    assert_eq!(i.catalog_file(Arch::Amd64).unwrap().file, "all.cat");
    let mut x: u64 = 1;
    for len in [0usize, 1, 2, 3, 100, 5000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 33) as u8
            })
            .collect();
        if let Ok(i) = Inf::parse(&junk) {
            let _ = i.problems(Arch::Amd64, Some(&[]));
        }
    }
    // Non-ASCII where a decoration is expected.
    assert_eq!(TargetOs::parse("éx"), None);
    assert_eq!(TargetOs::parse("n"), None);
    // Entries before any section are reported.
    assert!(kinds(&inf("k=v\n[Version]\n").problems(Arch::X86, None))
        .contains(&(1, ProblemKind::EntryOutsideSection)));
}
