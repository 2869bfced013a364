//! A plugin host: starts three plugin executables (built from `examples/plugin_*.rs`), each
//! implementing the `Plugin` trait, calls them all, and survives one of them crashing.
//!
//! ```text
//! cargo build --examples && cargo run --example plugin_host
//! ```
#[path = "common/plugin_api.rs"]
mod plugin_api;

use std::path::PathBuf;

use localrpc::process::Child;
use plugin_api::PluginClient;

const PLUGINS: [&str; 3] = ["plugin_upper", "plugin_wordcount", "plugin_crashy"];

/// The plugin executables sit next to this one (`target/<profile>/examples/`).
fn plugin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

struct Loaded {
    name: String,
    process: Child,
    client: PluginClient,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut plugins = Vec::new();
    for exe in PLUGINS {
        let path = plugin_path(exe);
        if !path.exists() {
            eprintln!(
                "{} is missing: run `cargo build --examples` first",
                path.display()
            );
            std::process::exit(2);
        }
        let mut process = localrpc::process::spawn(std::process::Command::new(&path)).await?;
        let client: PluginClient = process.client()?;
        let name = client.name().await?;
        println!("loaded plugin {name:?} (pid {})", process.id());
        plugins.push(Loaded {
            name,
            process,
            client,
        });
    }

    let mut crashed = Vec::new();
    for input in ["hello plugin world", ""] {
        for plugin in plugins.iter_mut() {
            if crashed.contains(&plugin.name) {
                continue;
            }
            match plugin.client.process(input.into()).await {
                Ok(Ok(out)) => println!("{:>10}({input:?}) = {out:?}", plugin.name),
                Ok(Err(e)) => println!("{:>10}({input:?}) refused: {}", plugin.name, e.0),
                Err(e) => {
                    // The plugin's process is gone: the call failed, the host goes on.
                    let status = plugin.process.wait().await?;
                    println!(
                        "{:>10}({input:?}) failed: {e} (plugin exited: {status})",
                        plugin.name
                    );
                    crashed.push(plugin.name.clone());
                }
            }
        }
    }
    assert_eq!(crashed, ["crashy"], "exactly the crashy plugin crashed");

    // The others still serve.
    for plugin in plugins.iter().filter(|p| !crashed.contains(&p.name)) {
        let out = plugin.client.process("still here".into()).await??;
        println!("{:>10} still serving: {out:?}", plugin.name);
    }
    // Unloading: each plugin sees its connection end and exits.
    for mut plugin in plugins {
        if crashed.contains(&plugin.name) {
            continue;
        }
        drop(plugin.client);
        plugin.process.close();
        let status = plugin.process.wait().await?;
        println!("unloaded {} ({status})", plugin.name);
        assert!(status.success());
    }
    Ok(())
}
