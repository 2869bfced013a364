use super::*;

#[test]
fn portable_names_are_validated() {
    assert!(Name::new("myapp.calc").is_ok());
    assert!(Name::new("a-b_c.9").is_ok());
    assert_eq!(Name::new(""), Err(NameError::Empty));
    assert_eq!(Name::new("a\0b"), Err(NameError::NulByte { offset: 1 }));
    assert_eq!(
        Name::new("a/b"),
        Err(NameError::InvalidChar { ch: '/', offset: 1 })
    );
    assert_eq!(
        Name::new("a b"),
        Err(NameError::InvalidChar { ch: ' ', offset: 1 })
    );
    assert_eq!(Name::new(".."), Err(NameError::LeadingDot));
    assert_eq!(Name::new(".hidden"), Err(NameError::LeadingDot));
}

#[test]
fn string_form_round_trips() {
    let mut forms = vec!["myapp.calc"];
    if cfg!(unix) {
        forms.push("unix:/tmp/x.sock");
    }
    if cfg!(any(target_os = "linux", target_os = "android")) {
        forms.push("abstract:myapp");
    }
    if cfg!(windows) {
        forms.push("pipe:myapp");
    }
    for form in forms {
        let name: Name = form.parse().unwrap();
        assert_eq!(name.to_string(), form);
        assert_eq!(name.to_string().parse::<Name>().unwrap(), name);
    }
}

#[test]
fn unknown_scheme_is_named() {
    assert_eq!(
        "http:x".parse::<Name>(),
        Err(NameError::UnknownScheme {
            scheme: "http".into()
        })
    );
}

#[cfg(unix)]
#[test]
fn unix_mapping() {
    let name = Name::new("svc").unwrap();
    let Endpoint::Path(path) = name.endpoint().unwrap() else {
        panic!("portable name must resolve to a path on unix")
    };
    assert!(path.ends_with("svc.sock"), "{}", path.display());
    assert!(path.is_absolute());

    assert_eq!(
        "pipe:x".parse::<Name>(),
        Err(NameError::Unsupported { form: "pipe" })
    );
}

#[cfg(unix)]
#[test]
fn long_paths_report_limit_and_length() {
    let max = crate::os::SUN_PATH_MAX;
    let long = format!("/{}", "x".repeat(max));
    match Name::path(&long) {
        Err(NameError::TooLong { len, max: m }) => {
            assert_eq!(len, long.len());
            assert_eq!(m, max);
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    let fits = format!("/{}", "x".repeat(max - 1));
    assert!(Name::path(fits).is_ok());
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn abstract_names() {
    let name = Name::abstract_name("svc").unwrap();
    assert_eq!(
        name.endpoint().unwrap(),
        Endpoint::Abstract(b"svc".to_vec())
    );
    assert_eq!(name.endpoint().unwrap().to_string(), "@svc");
    assert!(matches!(
        Name::abstract_name("x".repeat(200)),
        Err(NameError::TooLong { len: 200, .. })
    ));
}

#[cfg(windows)]
#[test]
fn windows_mapping() {
    let name = Name::new("svc").unwrap();
    assert_eq!(
        name.endpoint().unwrap(),
        Endpoint::Pipe(r"\\.\pipe\svc".into())
    );
    let pipe = Name::pipe(r"\\.\pipe\other").unwrap();
    assert_eq!(pipe.to_string(), "pipe:other");
    assert_eq!(
        "abstract:x".parse::<Name>(),
        Err(NameError::Unsupported { form: "abstract" })
    );
}
