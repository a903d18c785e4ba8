//! What the two pages (playground, dashboard) share: HTML escaping, the
//! labels in the network's language, the security headers, and the assets
//! embedded in the binary (no frontend build; plain HTML, CSS and a little
//! JavaScript).
//!
//! Every piece of text that comes from outside the binary (members'
//! messages, names from the config, error texts) goes through [`esc`] before
//! it enters HTML or SVG; the JavaScript only ever sets `textContent`. The
//! Content-Security-Policy allows scripts and styles from this server only,
//! so even a missed escape could not run inline code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML and SVG content and (double-quoted) attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Scripts, styles and requests: this server only; no inline code, no
/// frames, no foreign forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers every page gets.
pub fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// An HTML page with the security headers; never cached (it shows live state).
pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    r = secure(r);
    r
}

const STYLE_CSS: &str = include_str!("assets/style.css");
const PLAYGROUND_JS: &str = include_str!("assets/playground.js");
const ADMIN_JS: &str = include_str!("assets/admin.js");

/// `GET /assets/{name}`: the embedded stylesheet and script.
pub async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "playground.js" => (PLAYGROUND_JS, "text/javascript; charset=utf-8"),
        "admin.js" => (ADMIN_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    secure(
        (
            [
                (header::CONTENT_TYPE, kind),
                // Embedded in the binary: changes only with a new version.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
    )
}

/// The languages the pages speak; anything else falls back to English.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Nl,
    Fr,
    En,
}

impl Lang {
    pub fn of(code: &str) -> Lang {
        match code {
            "nl" => Lang::Nl,
            "fr" => Lang::Fr,
            _ => Lang::En,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The label `key` in this language (the key itself if unknown).
    pub fn t(self, key: &str) -> &str {
        LABELS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| match self {
                Lang::Nl => v[0],
                Lang::Fr => v[1],
                Lang::En => v[2],
            })
            .unwrap_or(key)
    }
}

/// Labels used by the script (sent in `/api/playground`).
pub const SCRIPT_LABELS: &[&str] = &[
    "member",
    "coordinator",
    "police",
    "reply",
    "reply_to_label",
    "replying_to",
    "alert",
    "not_alert",
    "police_called",
    "police_not_called",
    "categories",
    "role",
    "actions",
    "act_remind",
    "act_forward",
    "act_hold",
    "act_none",
    "relay",
    "live",
    "offline",
    "no_messages",
    "not_sent",
    "sent",
    "original_missing",
    "no_commands",
    "preview_empty",
    "advisory",
    "villages",
    "new_in",
];

/// key → [nl, fr, en]
const LABELS: &[(&str, [&str; 3])] = &[
    (
        "corrections",
        [
            "Correcties van coördinatoren",
            "Corrections des coordinateurs",
            "Coordinators' corrections",
        ],
    ),
    (
        "corrections_help",
        [
            "/doorsturen van een bericht dat de relay niet doorstuurde (gemist) en /intrekken van een doorgestuurde melding (ten onrechte doorgestuurd): gelabelde berichten om het model van het netwerk op te hertrainen.",
            "/transferer d'un message que le relais n'avait pas transféré (manqué) et /retirer d'un signalement transféré (transféré à tort) : des messages étiquetés pour réentraîner le modèle du réseau.",
            "/forward of a message the relay did not forward (missed) and /retract of a forwarded alert (wrongly forwarded): labelled messages to retrain the network's model on.",
        ],
    ),
    (
        "no_corrections",
        [
            "Nog geen correcties.",
            "Pas encore de corrections.",
            "No corrections yet.",
        ],
    ),
    ("month", ["Maand", "Mois", "Month"]),
    ("missed", ["gemist", "manqué", "missed"]),
    (
        "wrong_forward",
        [
            "ten onrechte doorgestuurd",
            "transféré à tort",
            "wrongly forwarded",
        ],
    ),
    ("correction", ["Correctie", "Correction", "Correction"]),
    (
        "export_corrections",
        [
            "Exporteren voor training (JSONL)",
            "Exporter pour l'entraînement (JSONL)",
            "Export for training (JSONL)",
        ],
    ),
    ("playground", ["Speeltuin", "Bac à sable", "Playground"]),
    (
        "playground_intro",
        [
            "Kies een dorp en een afzender, typ een bericht en zie live wat de relay ermee doet in elke groep.",
            "Choisissez un village et un expéditeur, tapez un message et voyez en direct ce que le relais en fait dans chaque groupe.",
            "Pick a village and a sender, type a message and watch what the relay does with it in every group, live.",
        ],
    ),
    (
        "compose",
        ["Bericht schrijven", "Écrire un message", "Write a message"],
    ),
    ("village", ["Dorp", "Village", "Village"]),
    ("sender", ["Afzender", "Expéditeur", "Sender"]),
    ("member", ["lid", "membre", "member"]),
    (
        "coordinator",
        ["coördinator", "coordinateur", "coordinator"],
    ),
    ("police", ["politie", "police", "police"]),
    ("message", ["Bericht", "Message", "Message"]),
    ("send", ["Versturen", "Envoyer", "Send"]),
    (
        "enter_hint",
        [
            "Enter verstuurt, Shift+Enter begint een nieuwe regel.",
            "Entrée envoie, Maj+Entrée commence une nouvelle ligne.",
            "Enter sends, Shift+Enter starts a new line.",
        ],
    ),
    ("reply", ["Antwoorden", "Répondre", "Reply"]),
    (
        "reply_to_label",
        ["Antwoorden op", "Répondre à", "Reply to"],
    ),
    ("replying_to", ["Antwoord op", "Réponse à", "Replying to"]),
    (
        "cancel_reply",
        ["Antwoord annuleren", "Annuler la réponse", "Cancel reply"],
    ),
    (
        "preview",
        [
            "Wat de relay zou doen",
            "Ce que le relais ferait",
            "What the relay would do",
        ],
    ),
    (
        "preview_empty",
        [
            "Typ een bericht: hier verschijnt wat de relay ermee zou doen.",
            "Tapez un message : ce que le relais en ferait apparaît ici.",
            "Type a message: what the relay would do with it appears here.",
        ],
    ),
    ("alert", ["Melding", "Alerte", "Alert"]),
    (
        "not_alert",
        ["Geen melding", "Pas une alerte", "Not an alert"],
    ),
    (
        "advisory",
        [
            "advies of bericht van de politie",
            "conseil ou bulletin",
            "advice or bulletin",
        ],
    ),
    (
        "police_called",
        ["politie gebeld", "police appelée", "police called"],
    ),
    (
        "police_not_called",
        [
            "politie niet gebeld",
            "police pas appelée",
            "police not called",
        ],
    ),
    ("categories", ["Categorieën", "Catégories", "Categories"]),
    ("role", ["Rol", "Rôle", "Role"]),
    ("actions", ["Acties", "Actions", "Actions"]),
    (
        "act_remind",
        ["herinnering in", "rappel dans", "reminder in"],
    ),
    (
        "act_forward",
        ["doorsturen naar", "transfert vers", "forward to"],
    ),
    (
        "act_hold",
        [
            "vasthouden, daarna naar",
            "retenue, puis vers",
            "hold, then to",
        ],
    ),
    ("act_none", ["niets in", "rien dans", "nothing in"]),
    ("villages", ["dorpen", "villages", "villages"]),
    ("villages_h", ["Dorpen", "Villages", "Villages"]),
    ("sends_to", ["stuurt naar", "envoie à", "sends to"]),
    (
        "receives_from",
        ["krijgt van", "reçoit de", "receives from"],
    ),
    ("relay", ["relay", "relais", "relay"]),
    (
        "new_in",
        ["Nieuw bericht in", "Nouveau message dans", "New message in"],
    ),
    ("live", ["live", "en direct", "live"]),
    (
        "offline",
        [
            "verbinding verbroken…",
            "connexion perdue…",
            "reconnecting…",
        ],
    ),
    (
        "no_messages",
        [
            "Nog geen berichten.",
            "Pas encore de messages.",
            "No messages yet.",
        ],
    ),
    ("not_sent", ["Niet verstuurd:", "Non envoyé :", "Not sent:"]),
    ("sent", ["Verstuurd.", "Envoyé.", "Sent."]),
    (
        "original_missing",
        [
            "(origineel bericht niet gevonden)",
            "(message d'origine introuvable)",
            "(original message not found)",
        ],
    ),
    (
        "groups",
        [
            "Groepen van het netwerk",
            "Groupes du réseau",
            "Groups of the network",
        ],
    ),
    (
        "commands",
        [
            "Coördinatorcommando's",
            "Commandes du coordinateur",
            "Coordinator commands",
        ],
    ),
    (
        "cmd_retract",
        [
            "Antwoord hiermee op een melding (of een kopie): alle kopieën worden verwijderd of rechtgezet.",
            "Répondez avec ceci à une alerte (ou une copie) : toutes les copies sont supprimées ou corrigées.",
            "Reply with this to an alert (or a copy): every copy is deleted or corrected.",
        ],
    ),
    (
        "cmd_forward",
        [
            "Antwoord hiermee op een bericht: het wordt nu doorgestuurd (ook een melding die wacht).",
            "Répondez avec ceci à un message : il est transféré maintenant (aussi une alerte en attente).",
            "Reply with this to a message: it is forwarded now (also an alert that is held).",
        ],
    ),
    (
        "cmd_status",
        [
            "De laatste meldingen van het netwerk en waar elke kopie staat.",
            "Les derniers signalements du réseau et où en est chaque copie.",
            "The network's last alerts and where each copy stands.",
        ],
    ),
    (
        "no_commands",
        [
            "Nog geen commando's in deze versie. Meldingen van coördinatoren gaan zonder herinnering door.",
            "Pas encore de commandes dans cette version. Les alertes des coordinateurs passent sans rappel.",
            "No commands in this version yet. Coordinators' alerts go out without a reminder.",
        ],
    ),
    (
        "other_platforms",
        [
            "groepen op andere platformen (niet in de speeltuin)",
            "groupes sur d'autres plateformes (pas dans le bac à sable)",
            "groups on other platforms (not in the playground)",
        ],
    ),
    ("dashboard", ["Dashboard", "Tableau de bord", "Dashboard"]),
    ("sign_in", ["Aanmelden", "Connexion", "Sign in"]),
    ("sign_out", ["Afmelden", "Déconnexion", "Sign out"]),
    (
        "admin_token",
        ["Beheerderstoken", "Jeton d'administration", "Admin token"],
    ),
    (
        "sign_in_intro",
        [
            "Het dashboard is beveiligd. Geef het token uit de config ([admin] token).",
            "Le tableau de bord est protégé. Entrez le jeton de la configuration ([admin] token).",
            "The dashboard is protected. Enter the token from the config ([admin] token).",
        ],
    ),
    (
        "wrong_token",
        ["Verkeerd token.", "Jeton incorrect.", "Wrong token."],
    ),
    (
        "dashboard_off",
        [
            "Het dashboard staat uit: deze config heeft geen [admin] token.",
            "Le tableau de bord est désactivé : cette configuration n'a pas de [admin] token.",
            "The dashboard is off: this config has no [admin] token.",
        ],
    ),
    ("map", ["Netwerkkaart", "Carte du réseau", "Network map"]),
    ("routes", ["Routes", "Routes", "Routes"]),
    ("route", ["Route", "Route", "Route"]),
    ("from", ["van", "de", "from"]),
    ("to", ["naar", "vers", "to"]),
    (
        "every_group",
        ["elke groep", "chaque groupe", "every group"],
    ),
    (
        "all_others",
        ["alle andere", "tous les autres", "all others"],
    ),
    ("neighbours", ["buren", "voisins", "neighbours"]),
    (
        "every_category",
        ["elke categorie", "chaque catégorie", "every category"],
    ),
    (
        "no_routes",
        [
            "Geen [[routes]]: elke melding gaat naar elke andere groep.",
            "Pas de [[routes]] : chaque alerte va vers tous les autres groupes.",
            "No [[routes]]: every alert goes to every other group.",
        ],
    ),
    (
        "recent_alerts",
        ["Recente meldingen", "Alertes récentes", "Recent alerts"],
    ),
    (
        "no_alerts",
        [
            "Nog geen meldingen.",
            "Pas encore d'alertes.",
            "No alerts yet.",
        ],
    ),
    ("when", ["Wanneer", "Quand", "When"]),
    ("category", ["Categorie", "Catégorie", "Category"]),
    (
        "police_col",
        ["Politie gebeld", "Police appelée", "Police called"],
    ),
    (
        "targets",
        ["Doelgroepen", "Groupes cibles", "Target groups"],
    ),
    ("yes", ["ja", "oui", "yes"]),
    ("no", ["nee", "non", "no"]),
    ("delivered", ["afgeleverd", "livré", "delivered"]),
    ("pending", ["wacht", "en attente", "pending"]),
    ("retrying", ["opnieuw", "nouvel essai", "retrying"]),
    ("dead", ["opgegeven", "abandonné", "dead"]),
    ("held", ["vastgehouden", "retenu", "held"]),
    ("unknown", ["onbekend", "inconnu", "unknown"]),
    ("health", ["Aflevering", "Livraison", "Delivery health"]),
    ("account", ["Account", "Compte", "Account"]),
    ("platform", ["Platform", "Plateforme", "Platform"]),
    ("queue", ["In de wachtrij", "En file", "Queued"]),
    ("oldest", ["Oudste", "Le plus ancien", "Oldest"]),
    ("sent_ok", ["Verstuurd", "Envoyés", "Sent"]),
    ("retries", ["Nieuwe pogingen", "Nouveaux essais", "Retries"]),
    (
        "dead_letters",
        ["Opgegeven berichten", "Messages abandonnés", "Dead letters"],
    ),
    (
        "no_dead",
        [
            "Geen opgegeven berichten.",
            "Aucun message abandonné.",
            "No dead letters.",
        ],
    ),
    (
        "reminders_sent",
        [
            "Herinneringen verstuurd",
            "Rappels envoyés",
            "Reminders sent",
        ],
    ),
    (
        "since_start",
        ["sinds de start", "depuis le démarrage", "since start"],
    ),
    ("resend", ["Opnieuw versturen", "Renvoyer", "Re-send"]),
    (
        "resent",
        [
            "opnieuw in de wachtrij gezet",
            "remis en file",
            "queued again",
        ],
    ),
    ("attempts", ["Pogingen", "Essais", "Attempts"]),
    (
        "last_error",
        ["Laatste fout", "Dernière erreur", "Last error"],
    ),
    ("text", ["Tekst", "Texte", "Text"]),
    ("group", ["Groep", "Groupe", "Group"]),
    ("config", ["Configuratie", "Configuration", "Configuration"]),
    (
        "reload_ok",
        ["laatst herladen", "dernier rechargement", "last reloaded"],
    ),
    (
        "reload_never",
        [
            "niet herladen sinds de start",
            "pas rechargée depuis le démarrage",
            "not reloaded since start",
        ],
    ),
    (
        "reload_error",
        [
            "laatste herlaadpoging geweigerd; de vorige config draait nog:",
            "dernier rechargement refusé ; l'ancienne configuration reste active :",
            "last reload refused; the previous config keeps running:",
        ],
    ),
    ("refresh", ["Vernieuwen", "Actualiser", "Refresh"]),
    (
        "live_updates",
        ["Live bijwerken", "Mise à jour en direct", "Live updates"],
    ),
    ("legend", ["Legende", "Légende", "Legend"]),
];

/// `2026-11-01 14:03 UTC` (no time-zone database in the binary).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A short age: `45 s`, `12 min`, `3 h`, `2 d`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_members_message_is_shown_as_text() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn every_label_has_three_languages_and_one_entry() {
        let mut seen = std::collections::HashSet::new();
        for (k, v) in LABELS {
            assert!(seen.insert(*k), "label `{k}` twice");
            for (i, s) in v.iter().enumerate() {
                assert!(!s.is_empty(), "label `{k}` empty in {i}");
            }
        }
        for k in SCRIPT_LABELS {
            assert!(seen.contains(k), "script label `{k}` missing");
        }
    }

    #[test]
    fn labels_follow_the_network_language() {
        assert_eq!(Lang::of("nl").t("send"), "Versturen");
        assert_eq!(Lang::of("fr").t("send"), "Envoyer");
        assert_eq!(Lang::of("de").t("send"), "Send");
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(utc(1_709_210_096_000), "2024-02-29 12:34 UTC");
        assert_eq!(age(59_000), "59 s");
        assert_eq!(age(3 * 3_600_000), "3 h");
    }
}
