//! Layer names from exporter scopes.
//!
//! PyTorch exporters name nodes after the module path: `/layer1/layer1.0/conv1/Conv`,
//! `/blocks.3/attn/qkv/MatMul`. A *layer* is that module path in dotted form
//! (`layer1.0.conv1`, `blocks.3.attn.qkv`): what users and planners call a layer.

/// `/layer1/layer1.0/conv1` → `layer1.0.conv1`: each scope component that already spells the
/// dotted path of its parent replaces it, as PyTorch's scoping does; others are appended.
pub fn scope_to_layer(scope: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in scope.split('/').filter(|s| !s.is_empty()) {
        let joined = out.join(".");
        if !joined.is_empty() && p.starts_with(&format!("{joined}.")) {
            out = vec![p.to_string()];
        } else if out.last().is_some_and(|l| p.starts_with(&format!("{l}."))) {
            out.pop();
            out.push(p.to_string());
        } else {
            out.push(p.to_string());
        }
    }
    out.join(".")
}

/// The layer a node belongs to. Scoped names drop their last component (the op instance,
/// `Conv`, `MatMul_1`); unscoped names (`Conv_0`, `node_12`) are their own layer; unnamed
/// nodes fall back to `op_type#index`.
pub fn layer_of_node(node_name: &str, op_type: &str, index: usize) -> String {
    if node_name.is_empty() {
        return format!("{op_type}#{index}");
    }
    if node_name.starts_with('/') {
        let trimmed = node_name.trim_start_matches('/');
        let scope = match trimmed.rfind('/') {
            Some(pos) => &trimmed[..pos],
            None => "",
        };
        if scope.is_empty() {
            // `/Flatten`, `/fc/Gemm` with a single scope are handled above; top level op.
            return trimmed.to_string();
        }
        return scope_to_layer(scope);
    }
    node_name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_scopes() {
        assert_eq!(
            layer_of_node("/layer1/layer1.0/conv1/Conv", "Conv", 0),
            "layer1.0.conv1"
        );
        assert_eq!(
            layer_of_node("/blocks.3/attn/qkv/MatMul", "MatMul", 0),
            "blocks.3.attn.qkv"
        );
        assert_eq!(
            layer_of_node("/blocks/blocks.3/attn/qkv/MatMul", "MatMul", 0),
            "blocks.3.attn.qkv"
        );
        assert_eq!(layer_of_node("/fc/Gemm", "Gemm", 0), "fc");
        assert_eq!(layer_of_node("/Flatten", "Flatten", 0), "Flatten");
        assert_eq!(layer_of_node("Conv_0", "Conv", 0), "Conv_0");
        assert_eq!(layer_of_node("", "Relu", 7), "Relu#7");
    }
}
