//! Routing rules → target groups. Pure.
//!
//! Every `[[routes]]` entry whose `from` includes the origin group and whose
//! `categories` share one of the alert's categories contributes its targets;
//! the union is returned in config order, never including the origin. A
//! network without routes sends every alert to every other group.

use std::collections::BTreeSet;

use crate::config::{Config, Group, GroupId, RouteTargets};

pub fn targets(cfg: &Config, origin: &Group, categories: &[String]) -> Vec<GroupId> {
    let mut picked: BTreeSet<&GroupId> = BTreeSet::new();
    if cfg.routes.is_empty() {
        picked.extend(cfg.groups.iter().map(|g| &g.id));
    }
    for r in &cfg.routes {
        let from_ok = r.from.as_ref().is_none_or(|f| f.contains(&origin.id));
        let cat_ok = r
            .categories
            .as_ref()
            .is_none_or(|set| categories.iter().any(|c| set.contains(c)));
        if !(from_ok && cat_ok) {
            continue;
        }
        match &r.to {
            RouteTargets::All => picked.extend(cfg.groups.iter().map(|g| &g.id)),
            RouteTargets::Neighbours => picked.extend(origin.neighbours.iter()),
            RouteTargets::Groups(v) => picked.extend(v.iter()),
        }
    }
    cfg.groups
        .iter()
        .filter(|g| g.id != origin.id && picked.contains(&g.id))
        .map(|g| g.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"
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
name = "Heers"
account = "sandbox"
chat = "heers"
[[groups]]
id = "batsheers"
name = "Batsheers"
account = "sandbox"
chat = "batsheers"
"#;

    fn cfg(routes: &str) -> Config {
        Config::parse(&format!("{BASE}{routes}"), Path::new("t.toml")).unwrap()
    }

    fn ids(v: Vec<GroupId>) -> Vec<String> {
        v.into_iter().map(|g| g.to_string()).collect()
    }

    #[test]
    fn without_routes_an_alert_goes_to_every_other_group() {
        let c = cfg("");
        let origin = c.group(&GroupId::parse("veulen").unwrap()).unwrap();
        assert_eq!(
            ids(targets(&c, origin, &["burglary_theft".into()])),
            ["heers", "batsheers"]
        );
    }

    #[test]
    fn a_neighbours_route_reaches_only_the_neighbours() {
        let c = cfg("[[routes]]\nfrom = \"*\"\nto = \"neighbours\"\n");
        let origin = c.group(&GroupId::parse("veulen").unwrap()).unwrap();
        assert_eq!(ids(targets(&c, origin, &["x".into()])), ["heers"]);
        let heers = c.group(&GroupId::parse("heers").unwrap()).unwrap();
        assert!(targets(&c, heers, &["x".into()]).is_empty());
    }

    #[test]
    fn a_category_route_applies_only_to_its_categories() {
        let c = cfg("[[routes]]\nfrom = \"*\"\nto = \"neighbours\"\n\
             [[routes]]\nfrom = [\"veulen\"]\nto = \"all\"\ncategories = [\"missing_person\"]\n");
        let origin = c.group(&GroupId::parse("veulen").unwrap()).unwrap();
        assert_eq!(
            ids(targets(&c, origin, &["burglary_theft".into()])),
            ["heers"]
        );
        assert_eq!(
            ids(targets(&c, origin, &["missing_person".into()])),
            ["heers", "batsheers"]
        );
    }
}
