//! Reading and making node attributes.
use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto, TensorProto};

/// The attribute called `name`.
pub fn get<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

pub fn get_int(node: &NodeProto, name: &str) -> Option<i64> {
    get(node, name).and_then(|a| a.i)
}

pub fn get_float(node: &NodeProto, name: &str) -> Option<f32> {
    get(node, name).and_then(|a| a.f)
}

pub fn get_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    get(node, name).map(|a| a.ints.clone())
}

pub fn get_string(node: &NodeProto, name: &str) -> Option<String> {
    get(node, name)
        .and_then(|a| a.s.as_ref())
        .map(|s| String::from_utf8_lossy(s).to_string())
}

pub fn get_tensor<'n>(node: &'n NodeProto, name: &str) -> Option<&'n TensorProto> {
    get(node, name).and_then(|a| a.t.as_ref())
}

fn base(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..base(name, AttributeType::Int)
    }
}

pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..base(name, AttributeType::Float)
    }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..base(name, AttributeType::Ints)
    }
}

pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: Some(v.as_bytes().to_vec()),
        ..base(name, AttributeType::String)
    }
}

pub fn tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..base(name, AttributeType::Tensor)
    }
}

/// Sets (adds or replaces) an attribute on a node.
pub fn set(node: &mut NodeProto, attr: AttributeProto) {
    match node.attribute.iter_mut().find(|a| a.name() == attr.name()) {
        Some(slot) => *slot = attr,
        None => node.attribute.push(attr),
    }
}

/// A node with the given op type, name, inputs, outputs and attributes (default domain).
pub fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op_type.to_string()),
        name: Some(name.to_string()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}
