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

#[cfg(feature = "tcp")]
#[test]
fn tcp_names_round_trip() {
    for form in [
        "tcp:127.0.0.1:4000",
        "tcp:[::1]:4000",
        "tcp:localhost:4000",
        "tcp:db-1.example_net.org:0",
        "tcp:0.0.0.0:65535",
    ] {
        let name: Name = form.parse().unwrap();
        assert_eq!(name.to_string(), form);
        assert_eq!(name.to_string().parse::<Name>().unwrap(), name);
        assert!(!name.is_portable());
    }
    assert_eq!(
        "tcp:[::1]:4000".parse::<Name>().unwrap(),
        Name::tcp("::1", 4000).unwrap()
    );
    assert_eq!(Name::tcp("[::1]", 4000).unwrap().as_given(), "[::1]:4000");
    let addr: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(Name::from(addr), "tcp:127.0.0.1:4000".parse().unwrap());
}

#[cfg(feature = "tcp")]
#[test]
fn tcp_endpoints_show_the_address() {
    let endpoint = "tcp:[::1]:4000"
        .parse::<Name>()
        .unwrap()
        .endpoint()
        .unwrap();
    assert_eq!(endpoint, Endpoint::Tcp("[::1]:4000".parse().unwrap()));
    assert_eq!(endpoint.to_string(), "[::1]:4000");
    let Endpoint::Tcp(addr) = "tcp:localhost:0"
        .parse::<Name>()
        .unwrap()
        .endpoint()
        .unwrap()
    else {
        panic!("a tcp name resolves to a tcp endpoint")
    };
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eq!(addr.port(), 0);
}

#[cfg(feature = "tcp")]
#[test]
fn bad_tcp_names_are_typed() {
    let host = |h: &str| NameError::InvalidHost { host: h.into() };
    let port = |p: &str| NameError::InvalidPort { port: p.into() };
    let cases = [
        ("tcp:localhost", port("")),
        ("tcp:localhost:", port("")),
        ("tcp:localhost:65536", port("65536")),
        ("tcp:localhost:+1", port("+1")),
        ("tcp:localhost:http", port("http")),
        ("tcp::4000", host("")),
        ("tcp:::1:4000", host("::1")),
        ("tcp:[::1:4000", host("[::1")),
        ("tcp:[127.0.0.1]:4000", host("[127.0.0.1]")),
        ("tcp:bad host:4000", host("bad host")),
        ("tcp:-lead.example:4000", host("-lead.example")),
        ("tcp:a..b:4000", host("a..b")),
    ];
    for (form, expected) in cases {
        assert_eq!(form.parse::<Name>(), Err(expected), "{form}");
    }
    assert_eq!(Name::tcp("a/b", 1), Err(host("a/b")));
    // The messages say what was wrong and what is expected.
    let message = "tcp:localhost".parse::<Name>().unwrap_err().to_string();
    assert!(message.contains("tcp:HOST:PORT"), "{message}");
}

#[cfg(not(feature = "tcp"))]
#[test]
fn tcp_names_need_the_feature() {
    for form in ["tcp:127.0.0.1:4000", "tcp:[::1]:0", "tcp:garbage"] {
        let error = form.parse::<Name>().unwrap_err();
        assert_eq!(error, NameError::FeatureDisabled { feature: "tcp" });
        let message = error.to_string();
        assert!(message.contains("`tcp` cargo feature"), "{message}");
        assert!(message.contains("not enabled"), "{message}");
    }
}
