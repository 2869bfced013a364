//! A plugin that counts words, and refuses empty input with an application error. Started
//! by `plugin_host`; see that example.
#[path = "common/plugin_api.rs"]
mod plugin_api;

use plugin_api::{Plugin, PluginError};

struct WordCount;

impl Plugin for WordCount {
    async fn name(&self) -> String {
        "wordcount".into()
    }
    async fn process(&self, input: String) -> Result<String, PluginError> {
        match input.split_whitespace().count() {
            0 => Err(PluginError("nothing to count".into())),
            n => Ok(format!("{n} words")),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    plugin_api::serve(WordCount).await;
}
