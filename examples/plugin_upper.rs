//! A plugin that upper-cases its input. Started by `plugin_host`; see that example.
#[path = "common/plugin_api.rs"]
mod plugin_api;

use plugin_api::{Plugin, PluginError};

struct Upper;

impl Plugin for Upper {
    async fn name(&self) -> String {
        "upper".into()
    }
    async fn process(&self, input: String) -> Result<String, PluginError> {
        Ok(input.to_uppercase())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    plugin_api::serve(Upper).await;
}
