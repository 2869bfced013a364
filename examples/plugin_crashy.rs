//! A badly behaved plugin: it crashes the whole process on its first real input. Started by
//! `plugin_host`, which must survive it; see that example.
#[path = "common/plugin_api.rs"]
mod plugin_api;

use plugin_api::{Plugin, PluginError};

struct Crashy;

impl Plugin for Crashy {
    async fn name(&self) -> String {
        "crashy".into()
    }
    async fn process(&self, _input: String) -> Result<String, PluginError> {
        eprintln!("crashy: aborting on purpose");
        std::process::abort();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    plugin_api::serve(Crashy).await;
}
