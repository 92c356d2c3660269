//! Prints the dependency groups of a model: `cargo run -p profagent-prune --example groups -- MODEL`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: groups MODEL.onnx");
        std::process::exit(2);
    };
    let model = match profagent_onnx::Model::load(&path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    match profagent_prune::analyze(&model) {
        Ok(groups) => {
            for g in groups {
                println!(
                    "{:<40} {:?} units={} width={} layers={} {}",
                    g.id,
                    g.kind,
                    g.units,
                    g.unit_width,
                    g.layers.len(),
                    match &g.status {
                        profagent_prune::GroupStatus::Prunable => "prunable".to_string(),
                        profagent_prune::GroupStatus::Unprunable { reason } =>
                            format!("UNPRUNABLE: {reason}"),
                    }
                );
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
}
