//! The proof that a cycle restores: its full dump, then increments whose oplog ranges `(from, to]`
//! join end to end from the dump's position, each archive as the manifest recorded it, each
//! `oplog.bson` holding what its range says. Pure: it reads no file and touches no server. The
//! restore, `verify` and `list` gather the facts (manifest, bucket listing or local folders, what
//! each oplog.bson holds) and ask `check`; a restore then asks `Chain::plan` before any write.
//!
//! Rules:
//! - A cycle without its full dump does not restore (unless only the increments are replayed).
//! - Increments with recorded ranges must chain exactly: each `from` equal to the previous `to` (the
//!   first to the dump's `oplog_start`), no gap, no overlap. Ranges a run captured and found empty
//!   are recorded too (`empty_ranges`) and bridge the gap they cover.
//! - Every archive has the size (and CRC64, checked while downloading) the manifest recorded; every
//!   oplog.bson holds the recorded entry count, all inside its range.
//! - Increments without a recorded range (the old scripts') are checked by their entries: each one's
//!   first entry after the previous one's last. The old scripts read the position before dumping,
//!   so their increments may repeat the last entries of the one before: tolerated, and those entries
//!   are applied once (`skip_through`). What cannot be checked is said (`notes`).

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind, Result};
use crate::layout::Key;
use crate::manifest::{ArchiveKind, Manifest};
use crate::position::Position;

/// What is known of the cycle's full dump.
#[derive(Debug, Clone, Default)]
pub struct DumpFacts {
    /// Its key in the bucket (found, else recorded).
    pub key: Option<String>,
    /// The archive (or the extracted folder) is there.
    pub present: bool,
    /// Size recorded in the manifest, and the size found in the bucket.
    pub recorded_size: Option<u64>,
    pub found_size: Option<u64>,
    /// Manifest: the oplog position the dump started at, and the one when it had finished.
    pub start: Option<Position>,
    pub end: Option<Position>,
    /// A problem found reading it (CRC64, a damaged archive).
    pub damage: Option<String>,
}

/// What is known of one increment.
#[derive(Debug, Clone, Default)]
pub struct IncrementFacts {
    /// `oplog_<stamp>`
    pub name: String,
    /// Its key in the bucket (found, else recorded).
    pub key: Option<String>,
    pub present: bool,
    pub recorded_size: Option<u64>,
    pub found_size: Option<u64>,
    /// Manifest: the range it captured and how many entries it held.
    pub from: Option<Position>,
    pub to: Option<Position>,
    pub entries: Option<u64>,
    /// What its oplog.bson holds, once read.
    pub contents: Option<Contents>,
    pub damage: Option<String>,
}

/// What an oplog.bson holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    pub entries: u64,
    pub first: Option<Position>,
    pub last: Option<Position>,
}

#[derive(Debug, Clone, Default)]
pub struct CycleFacts {
    pub cycle: String,
    pub has_manifest: bool,
    pub dump: DumpFacts,
    pub increments: Vec<IncrementFacts>,
    /// Ranges `(from, to]` captured and found to hold no entry of the database.
    pub empty_ranges: Vec<(Position, Position)>,
}

/// One increment in replay order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    pub name: String,
    /// Its range: recorded, or (old increments) from the previous end to its last entry.
    #[serde(rename = "oplog_from")]
    pub from: Option<Position>,
    #[serde(rename = "oplog_to")]
    pub to: Option<Position>,
    /// Entries at or before this position were in the increment before (old scripts' overlap).
    pub skip_through: Option<Position>,
    pub problem: Option<String>,
}

/// Every fact checked: the increments in order with their problems, and what could not be checked.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub cycle: String,
    pub dump_problem: Option<String>,
    pub start: Option<Position>,
    /// The earliest point the cycle restores to: the end of its dump (or its start, when the end
    /// is not recorded).
    pub earliest: Option<Position>,
    pub links: Vec<Link>,
    /// Where the chain ends once every increment is applied (empty ranges after it included).
    pub end: Option<Position>,
    pub notes: Vec<String>,
}

/// What a restore asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    pub until: Option<Position>,
    /// Restore up to the last point before the first break instead of refusing.
    pub allow_gap: bool,
    /// The full dump is restored first (not `--oplog-only`).
    pub with_dump: bool,
}

/// The increments a restore replays, once the chain is proven for it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Plan {
    pub increments: Vec<Link>,
    pub start: Option<Position>,
    pub earliest: Option<Position>,
    /// The point the plan restores to (before `until` is applied to the entries).
    pub end: Option<Position>,
    /// Where the cycle ends (everything it holds applied).
    pub cycle_end: Option<Position>,
    /// `allow_gap`: why the plan stops before the cycle's end.
    pub stopped: Option<String>,
    pub notes: Vec<String>,
}

impl CycleFacts {
    /// The facts a manifest (if any) and a place holding the archives give: `found` maps each
    /// archive key found (in the bucket, or as an extracted folder) to its size when known.
    /// Contents and damage are added later, as the archives are read.
    pub fn gather(
        cycle: &str,
        manifest: Option<&Manifest>,
        found: &BTreeMap<String, Option<u64>>,
    ) -> CycleFacts {
        let recorded_full = manifest.and_then(|m| m.full());
        let found_full = found
            .iter()
            .find(|(k, _)| matches!(Key::parse(k, ""), Key::CycleFull { cycle: c } if c == cycle));
        let dump = DumpFacts {
            key: found_full
                .map(|(k, _)| k.clone())
                .or_else(|| recorded_full.map(|f| f.key.clone())),
            present: found_full.is_some(),
            recorded_size: recorded_full.map(|f| f.size),
            found_size: found_full.and_then(|(_, size)| *size),
            start: recorded_full.and_then(|f| f.oplog_start),
            end: recorded_full.and_then(|f| f.oplog_end),
            damage: None,
        };
        let mut increments: BTreeMap<String, IncrementFacts> = BTreeMap::new();
        let recorded = manifest
            .iter()
            .flat_map(|m| m.archives.iter())
            .filter(|a| a.kind == ArchiveKind::Increment);
        for a in recorded {
            if let Key::Increment { name, .. } = Key::parse(&a.key, "") {
                increments.insert(
                    name.to_string(),
                    IncrementFacts {
                        name: name.to_string(),
                        key: Some(a.key.clone()),
                        recorded_size: Some(a.size),
                        from: a.oplog_from,
                        to: a.oplog_to,
                        entries: a.entries,
                        ..Default::default()
                    },
                );
            }
        }
        for (key, size) in found {
            if let Key::Increment { cycle: c, name } = Key::parse(key, "") {
                if c != cycle {
                    continue;
                }
                let inc = increments
                    .entry(name.to_string())
                    .or_insert_with(|| IncrementFacts {
                        name: name.to_string(),
                        ..Default::default()
                    });
                inc.present = true;
                inc.key = Some(key.clone());
                inc.found_size = *size;
            }
        }
        CycleFacts {
            cycle: cycle.to_string(),
            has_manifest: manifest.is_some(),
            dump,
            increments: increments.into_values().collect(),
            empty_ranges: manifest
                .map(|m| m.empty_ranges.iter().map(|r| (r.from, r.to)).collect())
                .unwrap_or_default(),
        }
    }

    pub fn increment_mut(&mut self, name: &str) -> Option<&mut IncrementFacts> {
        self.increments.iter_mut().find(|i| i.name == name)
    }
}

/// Checks every fact and returns the chain with each problem where it is.
pub fn check(facts: &CycleFacts) -> Chain {
    let cycle = &facts.cycle;
    let dump = &facts.dump;
    let mut chain = Chain {
        cycle: cycle.clone(),
        start: dump.start,
        earliest: dump.end.or(dump.start),
        ..Default::default()
    };
    chain.dump_problem = if !dump.present {
        Some(format!("the full dump of {cycle} is missing"))
    } else if let Some(why) = size_mismatch(dump.recorded_size, dump.found_size) {
        Some(format!("the full dump of {cycle} is damaged: {why}"))
    } else {
        dump.damage
            .as_ref()
            .map(|why| format!("the full dump of {cycle} is damaged: {why}"))
    };

    // Oplog order, whatever the names say (a clock that stepped back names a later increment
    // earlier): recorded ranges, else first entries; names only when neither is known.
    let mut increments: Vec<&IncrementFacts> = facts.increments.iter().collect();
    let begins = |i: &IncrementFacts| i.from.or(i.contents.and_then(|c| c.first));
    if increments.iter().all(|i| begins(i).is_some()) {
        increments.sort_by(|a, b| (begins(a), &a.name).cmp(&(begins(b), &b.name)));
    } else {
        increments.sort_by(|a, b| a.name.cmp(&b.name));
    }
    // The chain's end so far (a recorded position), the newest entry seen, and whether the end is
    // exact (recorded) rather than read from entries.
    let mut end = dump.start;
    let mut last_entry: Option<Position> = None;
    let mut end_exact = dump.start.is_some();
    for (k, inc) in increments.iter().enumerate() {
        let name = &inc.name;
        let ranged = inc.from.is_some() && inc.to.is_some();
        let mut link = Link {
            name: name.clone(),
            from: inc.from.or(end),
            to: inc.to.or(inc.contents.and_then(|c| c.last)),
            skip_through: None,
            problem: None,
        };
        link.problem = if !inc.present {
            let next = increments[k + 1..]
                .iter()
                .find(|n| n.present)
                .and_then(|n| n.from.or(n.contents.and_then(|c| c.first)));
            Some(match (end, next, inc.to) {
                (Some(a), Some(b), _) => {
                    format!("increment {name} is missing: the chain jumps from {a} to {b}")
                }
                (Some(a), None, Some(b)) => {
                    format!("increment {name} is missing: the chain ends at {a} instead of {b}")
                }
                _ => format!("increment {name} is missing"),
            })
        } else if let Some(why) = size_mismatch(inc.recorded_size, inc.found_size) {
            Some(format!("increment {name} is damaged: {why}"))
        } else {
            inc.damage
                .as_ref()
                .map(|why| format!("increment {name} is damaged: {why}"))
        };
        if let (None, true, true, Some(e), Some(from)) =
            (&link.problem, ranged, end_exact, end, inc.from)
        {
            if from > bridge(e, from, &facts.empty_ranges) {
                link.problem = Some(format!(
                    "increment {name} does not follow the one before: the chain jumps from {e} to {from} (an increment is missing)"
                ));
            } else if from < e {
                link.problem = Some(format!(
                    "increment {name} overlaps the one before: it starts at {from}, before {e}"
                ));
            }
        }
        if let (None, Some(c)) = (&link.problem, inc.contents) {
            link.problem = contents_problem(inc, &c);
            if link.problem.is_none() && !(ranged && end_exact) {
                // Old increments: judged by their entries.
                if let (Some(first), Some(seen)) = (c.first, last_entry) {
                    if first <= seen {
                        link.skip_through = Some(seen);
                        chain.notes.push(format!(
                            "{name} repeats entries up to {seen} of the increment before it (the old scripts read the position before capturing): they are applied once"
                        ));
                    }
                }
            }
        }
        // A problem is reported once: the next increment is judged against this one's record.
        end = link.to.or(end);
        last_entry = last_entry.max(inc.contents.and_then(|c| c.last));
        end_exact = ranged;
        chain.links.push(link);
    }
    chain.end = end.map(|e| bridge(e, Position::new(u32::MAX, u32::MAX), &facts.empty_ranges));

    let unranged = facts.increments.iter().filter(|i| i.from.is_none()).count();
    if !facts.has_manifest {
        chain.notes.push(
            "no manifest (stored by the old scripts or before manifests): sizes, CRC64 and ranges are not recorded, so the increments are checked by their entries only and one missing between two others cannot be detected".into(),
        );
    } else if unranged > 0 {
        chain.notes.push(format!(
            "{unranged} increment(s) have no recorded range (stored by the old scripts): they are checked by their entries only"
        ));
    }
    if dump.present && dump.start.is_none() && !facts.increments.is_empty() {
        chain.notes.push(
            "the dump's oplog position is not recorded: the first increment is not checked against it".into(),
        );
    }
    chain
}

/// A recorded entry count or range that the file's entries do not match.
fn contents_problem(inc: &IncrementFacts, c: &Contents) -> Option<String> {
    let name = &inc.name;
    if let Some(n) = inc.entries.filter(|n| *n != c.entries) {
        return Some(format!(
            "increment {name} holds {} entries, the manifest recorded {n}",
            c.entries
        ));
    }
    if let (Some(from), Some(to), Some(first), Some(last)) = (inc.from, inc.to, c.first, c.last) {
        if first <= from || last > to {
            return Some(format!(
                "increment {name} holds entries outside its range ({from}, {to}]: {first} .. {last}"
            ));
        }
    }
    None
}

fn size_mismatch(recorded: Option<u64>, found: Option<u64>) -> Option<String> {
    match (recorded, found) {
        (Some(r), Some(f)) if r != f => {
            Some(format!("{f} bytes stored, {r} recorded in the manifest"))
        }
        _ => None,
    }
}

/// How far `from` reaches across recorded empty ranges, stopping once `target` is reached.
fn bridge(from: Position, target: Position, empty: &[(Position, Position)]) -> Position {
    let mut reached = from;
    while reached < target {
        match empty
            .iter()
            .filter(|(f, t)| *f <= reached && *t > reached)
            .map(|(_, t)| *t)
            .max()
        {
            Some(next) => reached = next,
            None => break,
        }
    }
    reached
}

impl Chain {
    /// Every problem, dump first, for `verify` and `list`.
    pub fn problems(&self) -> Vec<String> {
        self.dump_problem
            .iter()
            .cloned()
            .chain(self.links.iter().filter_map(|l| l.problem.clone()))
            .collect()
    }

    /// The increments a restore replays, or the one-line refusal.
    pub fn plan(&self, opts: &PlanOptions) -> Result<Plan> {
        let refuse = |why: String| {
            Err(Error::new(ErrorKind::Integrity, why).with_context("cycle", self.cycle.clone()))
        };
        let mut plan = Plan {
            start: self.start,
            earliest: self.earliest,
            cycle_end: self.end,
            notes: self.notes.clone(),
            ..Default::default()
        };
        if opts.with_dump {
            if let Some(p) = &self.dump_problem {
                return refuse(format!(
                    "{p}: a cycle does not restore without its full dump; nothing was restored (--oplog-only replays the increments over the database as it is)"
                ));
            }
            if let (Some(until), Some(earliest)) = (opts.until, self.earliest) {
                if until < earliest {
                    let start = self.start.unwrap_or(earliest);
                    return refuse(format!(
                        "{} cannot be restored to {until}: the cycle starts at {}; the earliest point it can restore is {}",
                        self.cycle,
                        start.describe(),
                        earliest.describe()
                    ));
                }
            }
        } else {
            plan.notes.push(
                "--oplog-only: the full dump is not restored; the increments are replayed over the database as it is".into(),
            );
        }
        let mut reached = self.start;
        for link in &self.links {
            let needed = match (opts.until, link.from) {
                (Some(until), Some(from)) => from < until,
                _ => true,
            };
            if !needed {
                break;
            }
            if let Some(problem) = &link.problem {
                let upto = reached
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "the end of the dump".into());
                if opts.allow_gap {
                    plan.stopped = Some(format!("{problem}; restored up to {upto}"));
                    break;
                }
                return refuse(format!(
                    "{problem}; nothing was restored (--allow-gap restores up to {upto})"
                ))
                .map_err(|e| e.with_context("archive", link.name.clone()));
            }
            reached = link.to.or(reached);
            plan.increments.push(link.clone());
        }
        plan.end = if plan.stopped.is_none() && plan.increments.len() == self.links.len() {
            self.end.or(reached)
        } else {
            reached
        };
        if let (Some(until), Some(end), None) = (opts.until, plan.end, &plan.stopped) {
            if until > end && plan.increments.len() == self.links.len() {
                plan.notes.push(format!(
                    "the cycle ends at {}: everything it holds is restored",
                    end.describe()
                ));
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: u32, i: u32) -> Position {
        Position::new(t, i)
    }

    fn ranged(name: &str, from: Position, to: Position, entries: u64) -> IncrementFacts {
        IncrementFacts {
            name: name.into(),
            present: true,
            recorded_size: Some(10),
            found_size: Some(10),
            from: Some(from),
            to: Some(to),
            entries: Some(entries),
            ..Default::default()
        }
    }

    fn cycle(increments: Vec<IncrementFacts>) -> CycleFacts {
        CycleFacts {
            cycle: "c".into(),
            has_manifest: true,
            dump: DumpFacts {
                present: true,
                start: Some(p(100, 1)),
                end: Some(p(100, 5)),
                ..Default::default()
            },
            increments,
            empty_ranges: Vec::new(),
        }
    }

    fn all() -> PlanOptions {
        PlanOptions {
            with_dump: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_exact_chain_plans_every_increment() {
        let facts = cycle(vec![
            ranged("oplog_2", p(110, 1), p(120, 1), 3),
            ranged("oplog_1", p(100, 1), p(110, 1), 2),
        ]);
        let chain = check(&facts);
        assert!(chain.problems().is_empty(), "{:?}", chain.problems());
        let plan = chain.plan(&all()).unwrap();
        let names: Vec<&str> = plan.increments.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["oplog_1", "oplog_2"]);
        assert_eq!(plan.end, Some(p(120, 1)));
    }

    #[test]
    fn a_missing_increment_is_refused_with_the_jump() {
        let mut gone = ranged("oplog_2", p(110, 1), p(120, 1), 3);
        gone.present = false;
        gone.found_size = None;
        let facts = cycle(vec![
            ranged("oplog_1", p(100, 1), p(110, 1), 2),
            gone,
            ranged("oplog_3", p(120, 1), p(130, 1), 1),
        ]);
        let chain = check(&facts);
        assert_eq!(
            chain.problems(),
            ["increment oplog_2 is missing: the chain jumps from 110:1 to 120:1"]
        );
        let err = chain.plan(&all()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity);
        assert!(err.to_string().contains("--allow-gap restores up to 110:1"));
        // --allow-gap stops before it; --until before it needs none of it.
        let cut = chain
            .plan(&PlanOptions {
                allow_gap: true,
                ..all()
            })
            .unwrap();
        assert_eq!(cut.increments.len(), 1);
        assert_eq!(cut.end, Some(p(110, 1)));
        assert!(cut.stopped.unwrap().ends_with("restored up to 110:1"));
        let early = chain
            .plan(&PlanOptions {
                until: Some(p(109, 0)),
                ..all()
            })
            .unwrap();
        assert_eq!(early.increments.len(), 1);
    }

    #[test]
    fn unrecorded_gaps_and_overlaps_are_refused() {
        let chain = check(&cycle(vec![
            ranged("oplog_1", p(100, 1), p(110, 1), 2),
            ranged("oplog_3", p(120, 1), p(130, 1), 1),
        ]));
        assert_eq!(
            chain.problems(),
            ["increment oplog_3 does not follow the one before: the chain jumps from 110:1 to 120:1 (an increment is missing)"]
        );
        let chain = check(&cycle(vec![
            ranged("oplog_1", p(100, 1), p(110, 1), 2),
            ranged("oplog_2", p(105, 1), p(130, 1), 1),
        ]));
        assert!(chain.problems()[0].contains("overlaps"));
        let mut first = cycle(vec![ranged("oplog_1", p(99, 1), p(110, 1), 2)]);
        assert!(check(&first).problems()[0].contains("starts at 99:1, before 100:1"));
        // A range captured and found empty bridges the gap it covers.
        first.increments = vec![
            ranged("oplog_1", p(100, 1), p(110, 1), 2),
            ranged("oplog_3", p(120, 1), p(130, 1), 1),
        ];
        first.empty_ranges = vec![(p(110, 1), p(115, 0)), (p(115, 0), p(120, 1))];
        assert!(check(&first).problems().is_empty());
        first.empty_ranges.push((p(130, 1), p(140, 0)));
        assert_eq!(check(&first).end, Some(p(140, 0)));
    }

    #[test]
    fn contents_must_match_the_record() {
        let mut inc = ranged("oplog_1", p(100, 1), p(110, 1), 2);
        inc.contents = Some(Contents {
            entries: 2,
            first: Some(p(100, 2)),
            last: Some(p(111, 0)),
        });
        let chain = check(&cycle(vec![inc.clone()]));
        assert!(chain.problems()[0].contains("outside its range (100:1, 110:1]"));
        inc.contents = Some(Contents {
            entries: 3,
            first: Some(p(100, 2)),
            last: Some(p(110, 1)),
        });
        assert!(check(&cycle(vec![inc.clone()])).problems()[0]
            .contains("holds 3 entries, the manifest recorded 2"));
        inc.contents = None;
        inc.found_size = Some(9);
        assert!(check(&cycle(vec![inc])).problems()[0]
            .contains("9 bytes stored, 10 recorded in the manifest"));
    }

    #[test]
    fn a_missing_or_damaged_dump_refuses_unless_oplog_only() {
        let mut facts = cycle(vec![ranged("oplog_1", p(100, 1), p(110, 1), 2)]);
        facts.dump.present = false;
        let chain = check(&facts);
        assert!(chain
            .plan(&all())
            .unwrap_err()
            .to_string()
            .starts_with("the full dump of c is missing"));
        let only = chain.plan(&PlanOptions::default()).unwrap();
        assert_eq!(only.increments.len(), 1);
        assert!(only.notes.iter().any(|n| n.contains("--oplog-only")));
    }

    #[test]
    fn until_outside_the_cycle() {
        let chain = check(&cycle(vec![ranged("oplog_1", p(100, 1), p(110, 1), 2)]));
        let before = chain
            .plan(&PlanOptions {
                until: Some(p(100, 3)),
                ..all()
            })
            .unwrap_err()
            .to_string();
        assert!(before.contains("the cycle starts at 100:1"), "{before}");
        assert!(before.contains("the earliest point it can restore is 100:5"));
        let after = chain
            .plan(&PlanOptions {
                until: Some(p(200, 0)),
                ..all()
            })
            .unwrap();
        assert!(after
            .notes
            .iter()
            .any(|n| n.starts_with("the cycle ends at 110:1")));
    }

    #[test]
    fn old_increments_are_judged_by_their_entries() {
        let old = |name: &str, first: u32, last: u32| IncrementFacts {
            name: name.into(),
            present: true,
            contents: Some(Contents {
                entries: 2,
                first: Some(p(first, 1)),
                last: Some(p(last, 1)),
            }),
            ..Default::default()
        };
        let facts = CycleFacts {
            cycle: "c".into(),
            has_manifest: false,
            dump: DumpFacts {
                present: true,
                ..Default::default()
            },
            increments: vec![old("oplog_1", 10, 20), old("oplog_2", 18, 30)],
            empty_ranges: Vec::new(),
        };
        let chain = check(&facts);
        assert!(chain.problems().is_empty());
        assert_eq!(chain.links[1].skip_through, Some(p(20, 1)));
        // Named out of order (the clock stepped back): replayed in oplog order all the same.
        let mut renamed = facts.clone();
        renamed.increments[0].name = "oplog_9".into();
        let order: Vec<String> = check(&renamed)
            .links
            .iter()
            .map(|l| l.name.clone())
            .collect();
        assert_eq!(order, ["oplog_9", "oplog_2"]);
        assert!(chain.notes.iter().any(|n| n.starts_with("no manifest")));
        assert_eq!(chain.plan(&all()).unwrap().increments.len(), 2);
    }
}
