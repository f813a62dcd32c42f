//! Which collections a restore brings back and under which names, in mongorestore's spelling:
//! `--ns-include`/`--ns-exclude` patterns with `*`, `--ns-from`/`--ns-to` pairs with `$name$`
//! variables. And `Lineage`, which follows collections through renames and drops in an oplog, so
//! that a selection can be judged on the names the collections have at the point restored.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};

/// One piece of a pattern: literal text, or a run of any characters (named with `$name$`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Any(Option<String>),
}

/// A namespace pattern (`db.coll`; a bare `db` means every collection of it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    source: String,
    pieces: Vec<Piece>,
}

impl Pattern {
    /// `*` is a run of any characters, `$name$` a named one (only where `variables`), `\` escapes.
    fn parse(flag: &str, text: &str, variables: bool) -> Result<Pattern> {
        let mut full = text.to_string();
        if !text.contains('.') && !text.contains('*') && !text.contains('$') {
            full.push_str(".*");
        }
        let bad = |why: &str| Error::config(format!("{flag} '{text}': {why}"));
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = String::new();
        let mut chars = full.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => literal.push(chars.next().ok_or_else(|| bad("ends with a lone \\"))?),
                '*' => {
                    flush(&mut literal, &mut pieces);
                    pieces.push(Piece::Any(None));
                }
                '$' if variables => {
                    let name: String = chars.by_ref().take_while(|&c| c != '$').collect();
                    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        return Err(bad("a variable is written $name$ (letters, digits, _)"));
                    }
                    flush(&mut literal, &mut pieces);
                    pieces.push(Piece::Any(Some(name)));
                }
                c => literal.push(c),
            }
        }
        flush(&mut literal, &mut pieces);
        if pieces
            .windows(2)
            .any(|w| matches!(w, [Piece::Any(_), Piece::Any(_)]))
        {
            return Err(bad("two wildcards side by side cannot be told apart"));
        }
        Ok(Pattern {
            source: text.to_string(),
            pieces,
        })
    }

    /// The variables' values when `ns` matches (each run as short as it can be, so `$db$.$coll$`
    /// splits at the first dot).
    fn captures(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        match_from(&self.pieces, ns, &mut out).then_some(out)
    }

    fn matches(&self, ns: &str) -> bool {
        self.captures(ns).is_some()
    }
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Text(std::mem::take(literal)));
    }
}

fn match_from(pieces: &[Piece], text: &str, out: &mut BTreeMap<String, String>) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Text(t), rest)) => text
            .strip_prefix(t.as_str())
            .is_some_and(|tail| match_from(rest, tail, out)),
        Some((Piece::Any(name), rest)) => {
            for (cut, _) in text.char_indices().chain([(text.len(), ' ')]) {
                if match_from(rest, &text[cut..], out) {
                    if let Some(name) = name {
                        out.insert(name.clone(), text[..cut].to_string());
                    }
                    return true;
                }
            }
            false
        }
    }
}

/// A `--ns-from` pattern and the `--ns-to` template it maps to.
#[derive(Debug, Clone)]
struct Rename {
    from: Pattern,
    to: Pattern,
}

impl Rename {
    fn apply(&self, ns: &str) -> Option<String> {
        let values = self.from.captures(ns)?;
        let mut out = String::new();
        for piece in &self.to.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Any(Some(name)) => out.push_str(&values[name]),
                Piece::Any(None) => unreachable!("checked in Selection::new"),
            }
        }
        Some(out)
    }
}

/// What a restore selects and how it renames, by source namespace `db.coll`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    renames: Vec<Rename>,
}

impl Selection {
    pub fn new(
        include: &[String],
        exclude: &[String],
        from: &[String],
        to: &[String],
    ) -> Result<Self> {
        if from.len() != to.len() {
            return Err(Error::config(format!(
                "--ns-from and --ns-to come in pairs: {} --ns-from, {} --ns-to",
                from.len(),
                to.len()
            )));
        }
        let parse_all = |flag: &str, list: &[String]| -> Result<Vec<Pattern>> {
            list.iter()
                .map(|p| Pattern::parse(flag, p, false))
                .collect()
        };
        let mut renames = Vec::new();
        for (f, t) in from.iter().zip(to) {
            let from = Pattern::parse("--ns-from", f, true)?;
            let to = Pattern::parse("--ns-to", t, true)?;
            let known: Vec<&String> = from
                .pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Any(Some(n)) => Some(n),
                    _ => None,
                })
                .collect();
            for piece in &to.pieces {
                match piece {
                    Piece::Any(None) => {
                        return Err(Error::config(format!(
                            "--ns-to '{t}': use $name$ variables from --ns-from, not *"
                        )))
                    }
                    Piece::Any(Some(n)) if !known.contains(&n) => {
                        return Err(Error::config(format!(
                            "--ns-to '{t}': ${n}$ is not a variable of --ns-from '{f}'"
                        )))
                    }
                    _ => {}
                }
            }
            renames.push(Rename { from, to });
        }
        Ok(Selection {
            include: parse_all("--ns-include", include)?,
            exclude: parse_all("--ns-exclude", exclude)?,
            renames,
        })
    }

    /// No pattern given: every namespace, under its own name.
    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.renames.is_empty()
    }

    /// Whether `ns` is restored. System collections only when named exactly by an include.
    pub fn selects(&self, ns: &str) -> bool {
        let (_, coll) = split(ns);
        if coll.starts_with("system.") {
            return self
                .include
                .iter()
                .any(|p| p.pieces == [Piece::Text(ns.to_string())]);
        }
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(ns)))
            && !self.exclude.iter().any(|p| p.matches(ns))
    }

    /// The namespace `ns` is restored into (itself unless a `--ns-from` matches; the first wins).
    pub fn rename(&self, ns: &str) -> Result<String> {
        let Some(to) = self.renames.iter().find_map(|r| r.apply(ns)) else {
            return Ok(ns.to_string());
        };
        let (db, coll) = split(&to);
        let bad_db = db.is_empty()
            || db.len() > 63
            || db.chars().any(|c| "/\\. \"$".contains(c) || c == '\0');
        if bad_db || coll.is_empty() || coll.starts_with("system.") || coll.contains('$') {
            return Err(Error::config(format!(
                "--ns-to maps {ns} to '{to}', which is not a valid namespace (db.collection)"
            )));
        }
        Ok(to)
    }

    /// Where each selected namespace of `names` goes, in their order: `(source, target)`.
    pub fn targets<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for ns in names.into_iter().filter(|ns| self.selects(ns)) {
            let target = self.rename(ns)?;
            if let Some((other, _)) = out.iter().find(|(_, t)| *t == target) {
                return Err(Error::config(format!(
                    "{other} and {ns} would both be restored into {target}: make the --ns-to names differ"
                )));
            }
            out.push((ns.to_string(), target));
        }
        Ok(out)
    }
}

/// `db.coll` → (`db`, `coll`); a namespace without a dot is a database.
pub fn split(ns: &str) -> (&str, &str) {
    ns.split_once('.').unwrap_or((ns, ""))
}

/// Collections as an oplog moves them about: each name holds at most one live collection (an
/// instance, numbered in the order first seen); a rename moves the instance, a drop ends it, a
/// write to a name without one starts one (as the server creates collections implicitly).
/// Replaying the same entries in the same order numbers the instances the same way.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    live: HashMap<String, u64>,
    next: u64,
}

impl Lineage {
    /// The collections present before the first entry (the dump's), numbered in this order.
    pub fn seeded<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut lineage = Lineage::default();
        for ns in names {
            lineage.instance(ns);
        }
        lineage
    }

    /// The instance living at `ns`, started if there is none.
    pub fn instance(&mut self, ns: &str) -> u64 {
        if let Some(id) = self.live.get(ns) {
            return *id;
        }
        let id = self.next;
        self.next += 1;
        self.live.insert(ns.to_string(), id);
        id
    }

    pub fn get(&self, ns: &str) -> Option<u64> {
        self.live.get(ns).copied()
    }

    pub fn drop(&mut self, ns: &str) {
        self.live.remove(ns);
    }

    pub fn drop_database(&mut self, db: &str) {
        self.live.retain(|ns, _| split(ns).0 != db);
    }

    /// `from` becomes `to` (what lived at `to` ends). Returns the moved instance.
    pub fn rename(&mut self, from: &str, to: &str) -> u64 {
        let id = self.instance(from);
        self.live.remove(from);
        self.live.insert(to.to_string(), id);
        id
    }

    /// The live instances and their names, sorted by name.
    pub fn live(&self) -> BTreeMap<String, u64> {
        self.live.iter().map(|(ns, id)| (ns.clone(), *id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(include: &[&str], exclude: &[&str], from: &[&str], to: &[&str]) -> Selection {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selection::new(&own(include), &own(exclude), &own(from), &own(to)).unwrap()
    }

    #[test]
    fn include_and_exclude_follow_mongorestore() {
        let s = sel(&["shop.*"], &["shop.tmp_*"], &[], &[]);
        assert!(s.selects("shop.orders") && s.selects("shop.a.b"));
        assert!(!s.selects("shop.tmp_1") && !s.selects("other.orders"));
        assert!(
            !s.selects("shop.system.views"),
            "system collections need an exact include"
        );
        assert!(sel(&["shop.system.js"], &[], &[], &[]).selects("shop.system.js"));
        let bare = sel(&["shop"], &[], &[], &[]);
        assert!(bare.selects("shop.orders") && !bare.selects("shopping.orders"));
        assert!(sel(&[], &[], &[], &[]).is_everything());
        let escaped = sel(&["shop.a\\*b"], &[], &[], &[]);
        assert!(escaped.selects("shop.a*b") && !escaped.selects("shop.axb"));
    }

    #[test]
    fn renames_carry_variables_and_first_pair_wins() {
        let s = sel(
            &[],
            &[],
            &["shop.orders", "$db$.$coll$"],
            &["shop.orders_restored", "$db$_copy.$coll$"],
        );
        assert_eq!(s.rename("shop.orders").unwrap(), "shop.orders_restored");
        assert_eq!(s.rename("shop.a.b").unwrap(), "shop_copy.a.b");
        let s = sel(&[], &[], &["shop.orders"], &["shop.orders_restored"]);
        assert_eq!(s.rename("shop.customers").unwrap(), "shop.customers");
        let targets = s.targets(["shop.customers", "shop.orders"]).unwrap();
        assert_eq!(
            targets[1],
            ("shop.orders".into(), "shop.orders_restored".into())
        );
    }

    #[test]
    fn bad_patterns_and_collisions_are_refused_in_one_line() {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = |i: &[&str], f: &[&str], t: &[&str]| {
            Selection::new(&own(i), &[], &own(f), &own(t))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[], &["a.b"], &[]).contains("come in pairs"));
        assert!(err(&[], &["a.$x$"], &["a.$y$"]).contains("$y$ is not a variable"));
        assert!(err(&[], &["a.*"], &["a.*"]).contains("not *"));
        assert!(err(&["a.**"], &[], &[]).contains("side by side"));
        let s = sel(&[], &[], &["a.$c$"], &["b.same"]);
        assert!(s
            .targets(["a.x", "a.y"])
            .unwrap_err()
            .to_string()
            .contains("both be restored into b.same"));
        let s = sel(&[], &[], &["a.$c$"], &["bad db.$c$"]);
        assert!(s
            .rename("a.x")
            .unwrap_err()
            .to_string()
            .contains("not a valid namespace"));
    }

    #[test]
    fn lineage_follows_renames_drops_and_recreation() {
        let mut l = Lineage::seeded(["shop.orders", "shop.customers"]);
        let orders = l.get("shop.orders").unwrap();
        assert_eq!(l.rename("shop.orders", "shop.orders_old"), orders);
        let fresh = l.instance("shop.orders");
        assert_ne!(fresh, orders);
        // `$out`: a temporary collection renamed over the target.
        let tmp = l.instance("shop.tmp.agg_out.1");
        l.rename("shop.tmp.agg_out.1", "shop.orders");
        assert_eq!(l.get("shop.orders"), Some(tmp));
        l.drop("shop.orders_old");
        l.drop_database("other");
        l.drop_database("shop");
        assert!(l.live().is_empty());
    }
}
