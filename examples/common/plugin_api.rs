//! The interface every plugin implements, shared by the host and the plugin examples.
use serde::{Deserialize, Serialize};

/// Why a plugin could not process its input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PluginError(pub(crate) String);

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

/// What a plugin does for its host.
#[localrpc::service]
pub(crate) trait Plugin {
    /// The plugin's name.
    async fn name(&self) -> String;
    /// Turns `input` into the plugin's output.
    async fn process(&self, input: String) -> Result<String, PluginError>;
}

/// Serves `plugin` to the host that started this process; returns when the host is gone.
#[allow(dead_code, reason = "the host does not serve")]
pub(crate) async fn serve<P: Plugin + Send + Sync + 'static>(plugin: P) {
    if !localrpc::process::is_spawned() {
        eprintln!("this is a plugin: run `cargo run --example plugin_host`, which starts it");
        std::process::exit(2);
    }
    if let Err(e) = localrpc::process::serve_parent(PluginServer::new(plugin)).await {
        eprintln!("plugin: {e}");
        std::process::exit(1);
    }
}
