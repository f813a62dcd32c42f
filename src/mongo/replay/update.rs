//! Applying the `o` of an update oplog entry to the current document, on the client, so that the
//! written-back document is byte-identical to what the source server stored. Formats:
//! - replacement: `o` has `_id` (checked first: a replacement may hold a user field `$v`);
//! - mongod's `$v:2` delta (`diff` with `d`, `u`, `i`, `b`, `s<field>`, array diffs `a`), by the
//!   rules of ../shared/OPLOG-V2.md §3–4 (field order, type mismatch → null, missing sub-diff target
//!   → nothing created, padding with null);
//! - secantusdb's `$v:2` with a change-stream `updateDescription` (`updatedFields`, `removedFields`,
//!   `truncatedArrays`, `disambiguatedPaths`): set, then unset, then truncate;
//! - `$v:1` / unversioned modifiers: `$set` and `$unset` on dotted paths.

use mongodb::bson::{Array, Bson, Document};

/// Why an update could not be applied (a malformed entry).
pub type UpdateError = String;

/// The new document, or `Err` for an entry no server would have written.
pub fn apply(pre: &Document, o: &Document) -> Result<Document, UpdateError> {
    if o.contains_key("_id") {
        return Ok(o.clone());
    }
    let version = match o.get("$v") {
        Some(Bson::Int32(v)) => Some(i64::from(*v)),
        Some(Bson::Int64(v)) => Some(*v),
        Some(Bson::Double(v)) => Some(*v as i64),
        _ => None,
    };
    if version == Some(2) {
        let diff = o
            .get_document("diff")
            .map_err(|_| "a $v:2 update without a diff object".to_string())?;
        if is_update_description(diff) {
            return Ok(apply_update_description(pre, diff));
        }
        return apply_doc_diff(pre, diff);
    }
    if version == Some(1) || o.keys().next().is_some_and(|k| k.starts_with('$')) {
        return apply_modifiers(pre, o);
    }
    // An old full replacement without _id: keep the current _id.
    let mut doc = Document::new();
    if let Some(id) = pre.get("_id") {
        doc.insert("_id", id.clone());
    }
    doc.extend(o.clone());
    Ok(doc)
}

fn is_update_description(diff: &Document) -> bool {
    diff.contains_key("updatedFields")
        || diff.contains_key("removedFields")
        || diff.contains_key("truncatedArrays")
}

// ---- mongod $v:2 delta ------------------------------------------------------------------------

enum Action<'a> {
    Delete,
    Update(&'a Bson),
    Insert,
    Binary {
        offset: usize,
        data: &'a mongodb::bson::Binary,
    },
    Sub(&'a Document),
}

/// OPLOG-V2 §3: walk the pre-image in order, then append `u` fields that were missing and all `i`.
pub fn apply_doc_diff(pre: &Document, diff: &Document) -> Result<Document, UpdateError> {
    if diff.is_empty() {
        return Err("empty diff".into());
    }
    let mut actions: Vec<(&str, Action)> = Vec::new();
    let mut to_insert: Vec<(&str, &Bson)> = Vec::new();
    let mut inserts: Vec<(&str, &Bson)> = Vec::new();
    for (key, value) in diff {
        let section = || {
            value
                .as_document()
                .ok_or_else(|| format!("diff section {key} is not an object"))
        };
        match key.as_str() {
            "d" => actions.extend(section()?.keys().map(|k| (k.as_str(), Action::Delete))),
            "u" => {
                for (k, v) in section()? {
                    actions.push((k, Action::Update(v)));
                    to_insert.push((k, v));
                }
            }
            "i" => {
                for (k, v) in section()? {
                    actions.push((k, Action::Insert));
                    inserts.push((k, v));
                }
            }
            "b" => {
                for (k, v) in section()? {
                    let b = v
                        .as_document()
                        .ok_or("binary diff entry is not an object")?;
                    let offset = match b.get("o") {
                        Some(Bson::Int32(n)) if *n >= 0 => *n as usize,
                        Some(Bson::Int64(n)) if *n >= 0 => *n as usize,
                        _ => return Err("binary diff without a valid offset".into()),
                    };
                    let data = match b.get("d") {
                        Some(Bson::Binary(d)) => d,
                        _ => return Err("binary diff without BinData".into()),
                    };
                    actions.push((k, Action::Binary { offset, data }));
                }
            }
            k if k.starts_with('s') => actions.push((&k[1..], Action::Sub(section()?))),
            other => return Err(format!("unexpected diff section {other}")),
        }
    }
    to_insert.extend(inserts);
    let find = |name: &str| actions.iter().find(|(k, _)| *k == name).map(|(_, a)| a);
    let mut out = Document::new();
    let mut written: Vec<&str> = Vec::new();
    for (name, value) in pre {
        match find(name) {
            None => {
                out.insert(name.clone(), value.clone());
            }
            Some(Action::Delete) | Some(Action::Insert) => {}
            Some(Action::Update(v)) => {
                out.insert(name.clone(), (*v).clone());
                written.push(name);
            }
            Some(Action::Binary { offset, data }) => {
                let new = match value {
                    Bson::Binary(old) if old.bytes.len() >= *offset => {
                        let mut bytes = old.bytes[..*offset].to_vec();
                        bytes.extend_from_slice(&data.bytes);
                        Bson::Binary(mongodb::bson::Binary {
                            subtype: old.subtype,
                            bytes,
                        })
                    }
                    other => other.clone(),
                };
                out.insert(name.clone(), new);
                written.push(name);
            }
            Some(Action::Sub(sub)) => {
                let new = match (value, is_array_diff(sub)) {
                    (Bson::Document(d), false) => Bson::Document(apply_doc_diff(d, sub)?),
                    (Bson::Array(a), true) => Bson::Array(apply_array_diff(a, sub)?),
                    _ => Bson::Null, // re-application over a newer state: the future value overwrites it
                };
                out.insert(name.clone(), new);
            }
        }
    }
    for (name, value) in to_insert {
        if !written.contains(&name) && !out.contains_key(name) {
            out.insert(name, value.clone());
        }
    }
    Ok(out)
}

fn is_array_diff(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| k == "a")
}

/// OPLOG-V2 §4.2.
fn apply_array_diff(pre: &Array, diff: &Document) -> Result<Array, UpdateError> {
    let mut new_len: Option<usize> = None;
    let mut mods: Vec<(usize, bool, &Bson)> = Vec::new(); // (index, is_update, value)
    for (i, (key, value)) in diff.iter().enumerate() {
        match (i, key.as_str()) {
            (0, "a") => {}
            (1, "l") => {
                new_len = Some(match value {
                    Bson::Int32(n) if *n >= 0 => *n as usize,
                    _ => return Err("array diff length is not an int".into()),
                })
            }
            (_, k) if k.len() >= 2 && (k.starts_with('u') || k.starts_with('s')) => {
                let index = k[1..]
                    .parse::<usize>()
                    .map_err(|_| format!("bad array diff key {k}"))?;
                mods.push((index, k.starts_with('u'), value));
            }
            (_, k) => return Err(format!("bad array diff key {k}")),
        }
    }
    mods.sort_by_key(|m| m.0);
    let mut mods = mods.into_iter().peekable();
    let mut out = Array::new();
    let mut idx = 0;
    while idx < pre.len() && new_len.is_none_or(|l| idx < l) {
        match mods.peek() {
            Some((i, is_update, value)) if *i == idx => {
                out.push(if *is_update {
                    (*value).clone()
                } else {
                    sub_element(&pre[idx], value)?
                });
                mods.next();
            }
            _ => out.push(pre[idx].clone()),
        }
        idx += 1;
    }
    while mods.peek().is_some_and(|m| m.0 < idx) {
        mods.next(); // indexes of truncated elements
    }
    while new_len.is_some_and(|l| idx < l) || mods.peek().is_some() {
        match mods.peek() {
            Some((i, is_update, value)) if *i == idx => {
                out.push(if *is_update {
                    (*value).clone()
                } else {
                    Bson::Null
                });
                mods.next();
            }
            _ => out.push(Bson::Null),
        }
        idx += 1;
    }
    Ok(out)
}

fn sub_element(pre: &Bson, sub: &Bson) -> Result<Bson, UpdateError> {
    let sub = sub.as_document().ok_or("array sub-diff is not an object")?;
    Ok(match (pre, is_array_diff(sub)) {
        (Bson::Document(d), false) => Bson::Document(apply_doc_diff(d, sub)?),
        (Bson::Array(a), true) => Bson::Array(apply_array_diff(a, sub)?),
        _ => Bson::Null,
    })
}

// ---- dotted paths (secantusdb's updateDescription and $v:1 modifiers) ---------------------------

/// `$set`-like: creates missing documents on the way; a numeric part on an array is an index
/// (padding with null).
fn set_path(target: &mut Bson, parts: &[String], value: Bson) {
    let Some((head, rest)) = parts.split_first() else {
        *target = value;
        return;
    };
    match target {
        Bson::Document(d) => {
            if rest.is_empty() {
                d.insert(head.clone(), value);
            } else {
                let child = d
                    .entry(head.clone())
                    .or_insert_with(|| Bson::Document(Document::new()));
                set_path(child, rest, value);
            }
        }
        Bson::Array(a) => {
            if let Ok(i) = head.parse::<usize>() {
                while a.len() <= i {
                    a.push(Bson::Null);
                }
                if rest.is_empty() {
                    a[i] = value;
                } else {
                    if matches!(a[i], Bson::Null) {
                        a[i] = Bson::Document(Document::new());
                    }
                    set_path(&mut a[i], rest, value);
                }
            }
        }
        _ => {}
    }
}

/// `$unset`-like: removes a field; an array element becomes null.
fn unset_path(target: &mut Bson, parts: &[String]) {
    let Some((head, rest)) = parts.split_first() else {
        return;
    };
    match target {
        Bson::Document(d) => {
            if rest.is_empty() {
                d.remove(head);
            } else if let Some(child) = d.get_mut(head) {
                unset_path(child, rest);
            }
        }
        Bson::Array(a) => {
            if let Ok(i) = head.parse::<usize>() {
                if i < a.len() {
                    if rest.is_empty() {
                        a[i] = Bson::Null;
                    } else {
                        unset_path(&mut a[i], rest);
                    }
                }
            }
        }
        _ => {}
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

fn apply_update_description(pre: &Document, diff: &Document) -> Document {
    let mut doc = Bson::Document(pre.clone());
    let parts_of = |path: &str| -> Vec<String> {
        match diff
            .get_document("disambiguatedPaths")
            .ok()
            .and_then(|d| d.get_array(path).ok())
        {
            Some(parts) => parts
                .iter()
                .map(|p| match p {
                    Bson::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            None => split(path),
        }
    };
    if let Ok(updated) = diff.get_document("updatedFields") {
        for (path, value) in updated {
            set_path(&mut doc, &parts_of(path), value.clone());
        }
    }
    if let Ok(removed) = diff.get_array("removedFields") {
        for path in removed.iter().filter_map(Bson::as_str) {
            unset_path(&mut doc, &parts_of(path));
        }
    }
    if let Ok(truncated) = diff.get_array("truncatedArrays") {
        for t in truncated.iter().filter_map(Bson::as_document) {
            let (Ok(field), Some(size)) = (t.get_str("field"), t.get("newSize").and_then(as_usize))
            else {
                continue;
            };
            truncate_path(&mut doc, &parts_of(field), size);
        }
    }
    match doc {
        Bson::Document(d) => d,
        _ => unreachable!("the root stays a document"),
    }
}

fn as_usize(b: &Bson) -> Option<usize> {
    match b {
        Bson::Int32(n) if *n >= 0 => Some(*n as usize),
        Bson::Int64(n) if *n >= 0 => Some(*n as usize),
        _ => None,
    }
}

fn truncate_path(target: &mut Bson, parts: &[String], size: usize) {
    let mut node = target;
    for part in parts {
        node = match node {
            Bson::Document(d) => match d.get_mut(part) {
                Some(n) => n,
                None => return,
            },
            Bson::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return,
            },
            _ => return,
        };
    }
    if let Bson::Array(a) = node {
        a.truncate(size);
    }
}

/// `$v:1` and unversioned modifier entries: only `$set` and `$unset` are ever logged.
fn apply_modifiers(pre: &Document, o: &Document) -> Result<Document, UpdateError> {
    let mut doc = Bson::Document(pre.clone());
    for (op, fields) in o {
        match op.as_str() {
            "$v" => {}
            "$set" => {
                let fields = fields.as_document().ok_or("$set is not an object")?;
                // New fields of one update are created in path order, as mongod 3.6+ does.
                let mut paths: Vec<(&String, &Bson)> = fields.iter().collect();
                paths.sort_by(|a, b| a.0.cmp(b.0));
                for (path, value) in paths {
                    set_path(&mut doc, &split(path), value.clone());
                }
            }
            "$unset" => {
                let fields = fields.as_document().ok_or("$unset is not an object")?;
                for path in fields.keys() {
                    unset_path(&mut doc, &split(path));
                }
            }
            other => return Err(format!("unsupported modifier {other} in an oplog update")),
        }
    }
    match doc {
        Bson::Document(d) => Ok(d),
        _ => unreachable!("the root stays a document"),
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
