use super::*;
use mongodb::bson::{doc, Binary};

fn bytes(d: &Document) -> Vec<u8> {
    mongodb::bson::to_vec(d).unwrap()
}

/// Byte equality, as mongod's own tests demand (field order and types included).
fn check(pre: Document, o: Document, post: Document) {
    let got = apply(&pre, &o).unwrap();
    assert_eq!(bytes(&got), bytes(&post), "got {got}, want {post}");
}

#[test]
fn delta_field_order() {
    // u in place, u of a missing field appended, i always at the end (moving an existing field).
    check(
        doc! {"_id": 1, "a": 1, "b": 2, "c": 3},
        doc! {"$v": 2, "diff": {"d": {"c": false}, "u": {"a": 10, "z": 26}, "i": {"b": 20, "y": 25}}},
        doc! {"_id": 1, "a": 10, "z": 26, "b": 20, "y": 25},
    );
}

#[test]
fn delta_subdiffs_missing_and_mismatched() {
    check(
        doc! {"_id": 1, "s": {"x": 1, "y": 2}, "n": 5},
        doc! {"$v": 2, "diff": {"ss": {"u": {"x": 9}, "i": {"w": 0}}, "sn": {"u": {"q": 1}}, "smissing": {"u": {"a": 1}}}},
        doc! {"_id": 1, "s": {"x": 9, "y": 2, "w": 0}, "n": null},
    );
}

#[test]
fn delta_arrays() {
    // append past the end pads with null; l truncates; s<n> recurses into an element.
    check(
        doc! {"_id": 1, "a": [1, 2], "t": [1, 2, 3, 4], "o": [{"k": 1}]},
        doc! {"$v": 2, "diff": {
            "sa": {"a": true, "u4": 5},
            "st": {"a": true, "l": 2, "u1": 20},
            "so": {"a": true, "s0": {"u": {"k": 2}}, "s1": {"u": {"k": 3}}},
        }},
        doc! {"_id": 1, "a": [1, 2, null, null, 5], "t": [1, 20], "o": [{"k": 2}, null]},
    );
}

#[test]
fn delta_binary_patch_keeps_subtype() {
    let old = Binary {
        subtype: mongodb::bson::spec::BinarySubtype::UserDefined(0x80),
        bytes: vec![1, 2, 3, 4],
    };
    let d = Binary {
        subtype: mongodb::bson::spec::BinarySubtype::Generic,
        bytes: vec![9],
    };
    let want = Binary {
        subtype: old.subtype,
        bytes: vec![1, 2, 9],
    };
    check(
        doc! {"_id": 1, "b": old},
        doc! {"$v": 2, "diff": {"b": {"b": {"o": 2, "d": d}}}},
        doc! {"_id": 1, "b": want},
    );
}

#[test]
fn malformed_delta_is_an_error() {
    assert!(apply(&doc! {"_id": 1}, &doc! {"$v": 2, "diff": {}}).is_err());
    assert!(apply(&doc! {"_id": 1}, &doc! {"$v": 2, "diff": {"x": {}}}).is_err());
}

#[test]
fn secantus_update_description() {
    check(
        doc! {"_id": 1, "a": 1, "arr": [1], "sub": {"x": 1, "y": 2}, "num": {"1": "A"}, "gone": 0, "t": [1, 2, 3]},
        doc! {"$v": 2, "diff": {
            "updatedFields": {"a": 2, "new": "n", "sub.x": 5, "sub.z": 9, "arr.1": 2, "num.1": "B"},
            "removedFields": ["gone"],
            "truncatedArrays": [{"field": "t", "newSize": 1}],
            "disambiguatedPaths": {"num.1": ["num", "1"]},
        }},
        doc! {"_id": 1, "a": 2, "arr": [1, 2], "sub": {"x": 5, "y": 2, "z": 9}, "num": {"1": "B"}, "t": [1], "new": "n"},
    );
}

#[test]
fn v1_modifiers() {
    check(
        doc! {"_id": 1, "a": {"b": 1}, "arr": [1, 2, 3]},
        doc! {"$v": 1, "$set": {"z.y": 1, "a.c": 2, "arr.4": 9}, "$unset": {"a.b": true, "arr.0": true}},
        doc! {"_id": 1, "a": {"c": 2}, "arr": [null, 2, 3, null, 9], "z": {"y": 1}},
    );
    check(
        doc! {"_id": 1, "x": 1},
        doc! {"$set": {"x": 2}},
        doc! {"_id": 1, "x": 2},
    );
}

#[test]
fn replacement_wins_even_with_dollar_v() {
    check(
        doc! {"_id": 1, "x": 1},
        doc! {"_id": 1, "$v": 2, "y": 1},
        doc! {"_id": 1, "$v": 2, "y": 1},
    );
}
