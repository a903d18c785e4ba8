//! The network map: villages as nodes, routes as arrows, drawn as SVG from
//! the loaded config. Pure: a function of the config, so the map after a
//! reload shows the routing that is in force.
//!
//! Arrows follow the same rules as [`crate::routing::targets`]: every route
//! whose `from` includes a group sends to its `to` groups (never back to the
//! group itself); a network without routes sends everywhere. Each arrow says
//! which categories take it.

use std::collections::BTreeSet;
use std::f64::consts::PI;
use std::fmt::Write as _;

use serde::Serialize;

use super::ui::{Lang, esc};
use crate::config::{Config, GroupId, Route, RouteTargets};

/// One arrow: alerts of `categories` (`None` = every category) posted in
/// `from` are copied to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: GroupId,
    pub to: GroupId,
    pub categories: Option<BTreeSet<String>>,
}

/// Every arrow of the network, in config order of `from`, then `to`.
pub fn edges(cfg: &Config) -> Vec<Edge> {
    let mut out: Vec<Edge> = Vec::new();
    let mut add = |from: &GroupId, to: &GroupId, cats: &Option<BTreeSet<String>>| {
        if from == to {
            return;
        }
        match out.iter_mut().find(|e| &e.from == from && &e.to == to) {
            Some(e) => {
                e.categories = match (e.categories.take(), cats) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b.iter().cloned());
                        Some(a)
                    }
                    _ => None,
                }
            }
            None => out.push(Edge {
                from: from.clone(),
                to: to.clone(),
                categories: cats.clone(),
            }),
        }
    };
    if cfg.routes.is_empty() {
        for a in &cfg.groups {
            for b in &cfg.groups {
                add(&a.id, &b.id, &None);
            }
        }
    }
    for r in &cfg.routes {
        for src in &cfg.groups {
            if r.from.as_ref().is_some_and(|f| !f.contains(&src.id)) {
                continue;
            }
            let targets: Vec<&GroupId> = match &r.to {
                RouteTargets::All => cfg.groups.iter().map(|g| &g.id).collect(),
                RouteTargets::Neighbours => src.neighbours.iter().collect(),
                RouteTargets::Groups(v) => v.iter().collect(),
            };
            for t in targets {
                add(&src.id, t, &r.categories);
            }
        }
    }
    // Config order of groups, for a stable drawing.
    let pos = |g: &GroupId| cfg.groups.iter().position(|x| &x.id == g);
    out.sort_by_key(|e| (pos(&e.from), pos(&e.to)));
    out
}

/// A route in words: `from * to all, every category`.
pub fn describe_route(cfg: &Config, r: &Route, lang: Lang) -> String {
    let from = match &r.from {
        None => lang.t("every_group").to_string(),
        Some(set) => set
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let to = match &r.to {
        RouteTargets::All => lang.t("all_others").to_string(),
        RouteTargets::Neighbours => lang.t("neighbours").to_string(),
        RouteTargets::Groups(v) => v.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", "),
    };
    format!(
        "{} {from} {} {to} · {}",
        lang.t("from"),
        lang.t("to"),
        categories_text(cfg, &r.categories, lang)
    )
}

/// Categories in words, with their human labels (`[[protocol.categories]] label`).
pub fn categories_text(cfg: &Config, c: &Option<BTreeSet<String>>, lang: Lang) -> String {
    match c {
        None => lang.t("every_category").to_string(),
        Some(set) => set
            .iter()
            .map(|n| cfg.rules.label(n).unwrap_or(n))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Colours for the arrows, one per distinct category set (legend below the map).
const PALETTE: [&str; 6] = [
    "#2f6db5", "#c2571a", "#2e8540", "#8a3ab9", "#b3261e", "#6b6b00",
];

const SIZE: f64 = 720.0;
const RADIUS: f64 = 250.0;
const NODE_R: f64 = 9.0;

/// The map as a standalone SVG document (also inlined in the dashboard).
/// Presentation attributes only, no `style`: the page's CSP forbids inline styles.
pub fn svg(cfg: &Config, lang: Lang) -> String {
    let edges = edges(cfg);
    let n = cfg.groups.len().max(1);
    let c = SIZE / 2.0;
    let pos: Vec<(f64, f64, f64)> = (0..cfg.groups.len())
        .map(|i| {
            let a = -PI / 2.0 + 2.0 * PI * i as f64 / n as f64;
            (c + RADIUS * a.cos(), c + RADIUS * a.sin(), a)
        })
        .collect();
    let index = |g: &GroupId| cfg.groups.iter().position(|x| &x.id == g);

    // One colour per distinct category set; "every category" first.
    let mut sets: Vec<Option<BTreeSet<String>>> = Vec::new();
    if edges.iter().any(|e| e.categories.is_none()) {
        sets.push(None);
    }
    for e in &edges {
        if !sets.contains(&e.categories) {
            sets.push(e.categories.clone());
        }
    }
    let colour = |c: &Option<BTreeSet<String>>| {
        let i = sets.iter().position(|s| s == c).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let legend_h = 22.0 * sets.len() as f64 + 10.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {h}" width="100%" role="img" aria-labelledby="map-title map-desc" class="netmap" font-family="system-ui, sans-serif" font-size="15">"#,
        h = SIZE + legend_h
    );
    let _ = write!(
        s,
        r#"<title id="map-title">{}</title><desc id="map-desc">{} {}, {} {}</desc>"#,
        esc(lang.t("map")),
        cfg.groups.len(),
        esc(lang.t("villages")),
        edges.len(),
        esc(lang.t("routes")).to_lowercase()
    );
    s.push_str("<defs>");
    for (i, set) in sets.iter().enumerate() {
        let _ = write!(
            s,
            r#"<marker id="arrow{i}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker>"#,
            colour(set)
        );
    }
    s.push_str("</defs>");

    // Arrows: straight; when both directions exist, the two run side by
    // side (offset to the right of their direction), so each stays visible.
    s.push_str(r#"<g class="edges" fill="none" stroke-width="1.3" stroke-opacity="0.6">"#);
    for e in &edges {
        let (Some(a), Some(b)) = (index(&e.from), index(&e.to)) else {
            continue;
        };
        let (x1, y1, _) = pos[a];
        let (x2, y2, _) = pos[b];
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let both = edges.iter().any(|r| r.from == e.to && r.to == e.from);
        let side = if both { 2.5 } else { 0.0 };
        let (ox, oy) = (-uy * side, ux * side);
        // Start and end on the node circles, not at their centres.
        let (sx, sy) = (x1 + ux * (NODE_R + 2.0) + ox, y1 + uy * (NODE_R + 2.0) + oy);
        let (ex, ey) = (x2 - ux * (NODE_R + 3.0) + ox, y2 - uy * (NODE_R + 3.0) + oy);
        let from_name = &cfg.groups[a].name;
        let to_name = &cfg.groups[b].name;
        let i = sets.iter().position(|x| x == &e.categories).unwrap_or(0);
        let _ = write!(
            s,
            r#"<path class="edge" data-from="{}" data-to="{}" d="M{sx:.1},{sy:.1} L{ex:.1},{ey:.1}" stroke="{}" marker-end="url(#arrow{i})"><title>{} → {} ({})</title></path>"#,
            esc(e.from.as_str()),
            esc(e.to.as_str()),
            colour(&e.categories),
            esc(from_name),
            esc(to_name),
            esc(&categories_text(cfg, &e.categories, lang)),
        );
    }
    s.push_str("</g>");

    // Nodes: a dot and the village name outside the circle.
    s.push_str(r#"<g class="nodes">"#);
    for (g, (x, y, a)) in cfg.groups.iter().zip(&pos) {
        let outgoing = edges.iter().filter(|e| e.from == g.id).count();
        let incoming = edges.iter().filter(|e| e.to == g.id).count();
        let isolated = outgoing == 0 && incoming == 0;
        let (lx, ly) = (x + 18.0 * a.cos(), y + 18.0 * a.sin() + 5.0);
        let anchor = if a.cos() > 0.3 {
            "start"
        } else if a.cos() < -0.3 {
            "end"
        } else {
            "middle"
        };
        let ly = if a.sin() < -0.9 {
            ly - 6.0
        } else if a.sin() > 0.9 {
            ly + 8.0
        } else {
            ly
        };
        let _ = write!(
            s,
            r##"<g class="node" data-group="{id}"><title>{name} ({id}, {platform}): {outgoing} → · → {incoming}</title><circle cx="{x:.1}" cy="{y:.1}" r="{NODE_R}" fill="{fill}" stroke="#1d2b3a" stroke-width="2"{dash}/><text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" fill="#1d2b3a" font-weight="600">{name}</text></g>"##,
            id = esc(g.id.as_str()),
            name = esc(&g.name),
            platform = g.platform.as_str(),
            fill = if isolated { "#ffffff" } else { "#f2c230" },
            dash = if isolated {
                r#" stroke-dasharray="3 2""#
            } else {
                ""
            },
        );
    }
    s.push_str("</g>");

    // Legend: colour → categories.
    let _ = write!(s, r#"<g class="legend" transform="translate(16 {SIZE})">"#);
    for (i, set) in sets.iter().enumerate() {
        let y = 22.0 * i as f64;
        let _ = write!(
            s,
            r##"<line x1="0" y1="{y}" x2="34" y2="{y}" stroke="{}" stroke-width="3" marker-end="url(#arrow{i})"/><text x="44" y="{ty}" fill="#1d2b3a">{}</text>"##,
            colour(set),
            esc(&categories_text(cfg, set, lang)),
            ty = y + 5.0,
        );
    }
    s.push_str("</g></svg>");
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cfg(routes: &str) -> Config {
        let src = format!(
            r#"
[accounts.sandbox]
platform = "sandbox"
[[groups]]
id = "veulen"
name = "Veulen"
account = "sandbox"
chat = "veulen"
neighbours = ["heers"]
[[groups]]
id = "heers"
name = "Heers <&>"
account = "sandbox"
chat = "heers"
neighbours = ["veulen"]
[[groups]]
id = "opheers"
name = "Opheers"
account = "sandbox"
chat = "opheers"
{routes}
"#
        );
        Config::parse(&src, Path::new("t.toml")).unwrap()
    }

    fn pairs(c: &Config) -> Vec<(String, String, String)> {
        edges(c)
            .into_iter()
            .map(|e| {
                (
                    e.from.to_string(),
                    e.to.to_string(),
                    e.categories.map_or("*".to_string(), |c| {
                        c.into_iter().collect::<Vec<_>>().join(", ")
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn without_routes_every_village_points_at_every_other() {
        assert_eq!(edges(&cfg("")).len(), 6);
    }

    #[test]
    fn routes_become_arrows_with_their_categories() {
        let c = cfg(r#"
[[routes]]
from = ["veulen"]
to = ["opheers"]
categories = ["doorstep_scam"]
[[routes]]
from = "*"
to = "neighbours"
categories = ["burglary_theft", "doorstep_scam"]
[[routes]]
from = ["opheers"]
to = "all"
"#);
        assert_eq!(
            pairs(&c),
            [
                (
                    "veulen".into(),
                    "heers".into(),
                    "burglary_theft, doorstep_scam".into()
                ),
                ("veulen".into(), "opheers".into(), "doorstep_scam".into()),
                (
                    "heers".into(),
                    "veulen".into(),
                    "burglary_theft, doorstep_scam".into()
                ),
                ("opheers".into(), "veulen".into(), "*".into()),
                ("opheers".into(), "heers".into(), "*".into()),
            ]
        );
    }

    #[test]
    fn the_svg_names_every_village_escaped_and_draws_every_arrow() {
        let c = cfg("");
        let s = svg(&c, Lang::Nl);
        assert!(s.contains(">Veulen</text>"));
        assert!(s.contains(">Heers &lt;&amp;&gt;</text>"));
        assert!(!s.contains("Heers <&>"));
        assert_eq!(s.matches(r#"class="edge""#).count(), 6);
        assert!(!s.contains("style="), "no inline styles (CSP)");
    }
}
