//! What child processes do in the cross-process tests.
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use localrpc::codec::{Codec, Postcard};
use localrpc::ipc::{self, ListenerOptions, LocalListener, LocalStream};
use localrpc::transport::Framed;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{report, rt};

/// The message the frame server decodes.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Msg {
    pub id: u64,
    pub text: String,
}

/// A short tag for each error kind, so the parent can match on it.
pub fn error_tag(e: &ipc::Error) -> &'static str {
    match e {
        ipc::Error::Name(_) => "name",
        ipc::Error::AddrInUse { .. } => "addr-in-use",
        ipc::Error::NotASocket { .. } => "not-a-socket",
        ipc::Error::NotFound { .. } => "not-found",
        ipc::Error::PermissionDenied { .. } => "permission-denied",
        ipc::Error::Busy { .. } => "busy",
        ipc::Error::InsecureDir { .. } => "insecure-dir",
        _ => "io",
    }
}

/// Plays the role this process was started for, if it is a child; returns at once otherwise.
pub fn run_child() {
    let Some((role, args)) = super::child_role() else {
        return; // an ordinary test run: nothing to do here
    };
    let arg = |i: usize| args[i].as_str();
    match role.as_str() {
        "echo-tokio" => {
            rt().block_on(async { serve_echo(bind_or_report(arg(0), args.get(1))).await })
        }
        "echo-blocking" => serve_echo_blocking(arg(0)),
        "whoami" => rt().block_on(serve_whoami(arg(0))),
        "frame-server" => rt().block_on(serve_frames(arg(0), arg(1).parse().unwrap())),
        "connect" => rt().block_on(async {
            match LocalStream::connect(arg(0)).await {
                Ok(_) => report("CONNECTED"),
                Err(e) => report(format!("CONNECT-ERROR {} {e}", error_tag(&e))),
            }
        }),
        #[cfg(unix)]
        "connect-as" => {
            drop_privileges(arg(0).parse().unwrap());
            match ipc::blocking::LocalStream::connect(arg(1)) {
                Ok(_) => report("CONNECTED"),
                Err(e) => report(format!("CONNECT-ERROR {} {e}", error_tag(&e))),
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Binds `name` (with an optional octal mode) and reports `BOUND <endpoint>` or
/// `BIND-ERROR <tag> <message>`; on error the child exits.
fn bind_or_report(name: &str, mode: Option<&String>) -> LocalListener {
    let opts = ListenerOptions::new();
    #[cfg(unix)]
    let opts = match mode {
        Some(m) => opts.mode(u32::from_str_radix(m, 8).unwrap()),
        None => opts,
    };
    #[cfg(not(unix))]
    let _ = mode;
    match opts.bind(name) {
        Ok(listener) => {
            report(format!("BOUND {}", listener.endpoint()));
            listener
        }
        Err(e) => {
            report(format!("BIND-ERROR {} {e}", error_tag(&e)));
            std::process::exit(0);
        }
    }
}

async fn serve_echo(listener: LocalListener) {
    loop {
        let mut stream = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

fn serve_echo_blocking(name: &str) {
    let listener = ipc::blocking::LocalListener::bind(name).unwrap();
    report(format!("BOUND {}", listener.endpoint()));
    loop {
        let mut stream = listener.accept().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                if stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

/// Tells each client what the OS says about it: `pid uid gid` (`-` where unknown).
async fn serve_whoami(name: &str) {
    let listener = bind_or_report(name, None);
    loop {
        let mut stream = listener.accept().await.unwrap();
        let cred = stream.peer_credentials().unwrap();
        let show = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let line = format!(
            "{} {} {}\n",
            show(cred.pid()),
            show(cred.uid()),
            show(cred.gid())
        );
        stream.write_all(line.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        // Keep the connection until the client closes it.
        let _ = stream.read(&mut [0u8; 1]).await;
    }
}

/// Decodes each frame as a `Msg` and answers with its text upper-cased; a frame that does not
/// decode gets an `ERR:` frame back; a framing error ends that connection only.
async fn serve_frames(name: &str, max: usize) {
    let listener = bind_or_report(name, None);
    loop {
        let stream = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut conn = Framed::with_max_frame_len(stream, max);
            while let Some(frame) = conn.next().await {
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(e) => {
                        report(format!("CONN-ERROR {e:?}"));
                        return;
                    }
                };
                let reply = match Codec::<Msg>::decode(&Postcard, &frame) {
                    Ok(msg) => {
                        let mut buf = bytes::BytesMut::new();
                        let up = Msg {
                            id: msg.id,
                            text: msg.text.to_uppercase(),
                        };
                        Postcard.encode(&up, &mut buf).unwrap();
                        buf.freeze()
                    }
                    Err(e) => {
                        report(format!("DECODE-ERROR {e}"));
                        Bytes::from(format!("ERR:{e}"))
                    }
                };
                if conn.send(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(unix)]
fn drop_privileges(uid: u32) {
    // SAFETY: plain system calls on this (single-purpose child) process.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(uid), 0);
        assert_eq!(libc::setuid(uid), 0);
    }
}
