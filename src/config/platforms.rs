//! What only some platforms need: the WhatsApp gateways' account keys
//! (`session`, `instance`, `phone_number_id`, `verify_token`), the shape of
//! their chat ids, and their user ids in `coordinators` / `police`. Checked
//! once at load, with `file:line:col` errors; past the loader a
//! [`PlatformSettings`] is complete and every WhatsApp id is canonical.

use std::ops::Range;

use toml::Spanned;

use super::raw::RawAccount;
use super::{AccountId, ChatId, Cx, PlatformKind, Secret, secret};

/// The settings one platform needs beyond `api_url`, `token` and
/// `webhook_secret`.
#[derive(Clone, Debug)]
pub enum PlatformSettings {
    /// The sandbox needs nothing more.
    None,
    /// Telegram: what a group admin posting anonymously (as the group) is.
    Telegram { anonymous_admins: AnonymousAdmins },
    /// WAHA: the session that sends (`POST /api/sendText {session, ...}`).
    Waha { session: String },
    /// Evolution API: the instance that sends (`/message/sendText/{instance}`).
    Evolution { instance: String },
    /// WhatsApp Cloud API: the business number's id, and the token Meta
    /// echoes in the `GET` verification handshake.
    WhatsappCloud {
        phone_number_id: String,
        verify_token: Secret,
    },
}

/// What the relay makes of a Telegram group admin who posts anonymously
/// (`from` is @GroupAnonymousBot, `sender_chat` the group itself): only the
/// group's admins can do that, but Telegram does not say which one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonymousAdmins {
    /// A coordinator: their commands run, they get no reminder (default).
    Coordinator,
    /// A member like any other (one shared reminder cooldown for all of them).
    Member,
}

/// A WAHA session or Evolution instance name: it goes into JSON and URL paths.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Refuses a key written for another platform, where it stands.
fn only_for(
    cx: &mut Cx,
    aid: &AccountId,
    platform: PlatformKind,
    key: &str,
    v: &Option<Spanned<String>>,
    owner: PlatformKind,
) {
    if let Some(v) = v {
        if platform != owner {
            cx.err(
                v.span(),
                format!(
                    "accounts.{aid}.{key} is only for platform = \"{owner}\" accounts (this one is \"{platform}\")"
                ),
            );
        }
    }
}

/// Checks the platform-specific keys of one account and builds its settings.
/// `id_span` is where `[accounts.ID]` stands, for "missing key" errors.
pub(super) fn account_settings(
    cx: &mut Cx,
    aid: &AccountId,
    id_span: Range<usize>,
    platform: PlatformKind,
    a: &RawAccount,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> PlatformSettings {
    only_for(cx, aid, platform, "session", &a.session, PlatformKind::Waha);
    only_for(
        cx,
        aid,
        platform,
        "instance",
        &a.instance,
        PlatformKind::Evolution,
    );
    only_for(
        cx,
        aid,
        platform,
        "phone_number_id",
        &a.phone_number_id,
        PlatformKind::WhatsappCloud,
    );
    only_for(
        cx,
        aid,
        platform,
        "verify_token",
        &a.verify_token,
        PlatformKind::WhatsappCloud,
    );
    only_for(
        cx,
        aid,
        platform,
        "anonymous_admins",
        &a.anonymous_admins,
        PlatformKind::Telegram,
    );
    let needs_api_url = matches!(platform, PlatformKind::Waha | PlatformKind::Evolution);
    if needs_api_url && a.api_url.is_none() {
        cx.err(
            id_span.clone(),
            format!(
                "accounts.{aid}: a {platform} account needs `api_url`, where the gateway listens (e.g. \"http://{platform}:{}\")",
                if platform == PlatformKind::Waha { 3000 } else { 8080 }
            ),
        );
    }
    match platform {
        PlatformKind::Sandbox => PlatformSettings::None,
        PlatformKind::Telegram => {
            let anonymous_admins = match a
                .anonymous_admins
                .as_ref()
                .map(|s| (s, s.get_ref().as_str()))
            {
                None | Some((_, "coordinator")) => AnonymousAdmins::Coordinator,
                Some((_, "member")) => AnonymousAdmins::Member,
                Some((s, other)) => {
                    cx.err(
                        s.span(),
                        format!("accounts.{aid}.anonymous_admins `{other}`: write \"coordinator\" or \"member\""),
                    );
                    AnonymousAdmins::Coordinator
                }
            };
            PlatformSettings::Telegram { anonymous_admins }
        }
        PlatformKind::Waha => {
            let session = match &a.session {
                None => "default".to_string(),
                Some(s) if is_plain_name(s.get_ref()) => s.get_ref().clone(),
                Some(s) => {
                    cx.err(
                        s.span(),
                        format!(
                            "accounts.{aid}.session `{}` is not a WAHA session name (letters, digits, `-`, `_`, `.`; WAHA's default is \"default\")",
                            s.get_ref()
                        ),
                    );
                    "default".to_string()
                }
            };
            if a.token.is_none() {
                warnings.push(format!(
                    "accounts.{aid}: no token: WAHA is called without X-Api-Key; set WAHA_API_KEY in WAHA and the same value as token here"
                ));
            }
            if a.webhook_secret.is_none() {
                warnings.push(format!(
                    "accounts.{aid}: no webhook_secret: anyone who can reach the webhook URL can post messages; set WHATSAPP_HOOK_HMAC_KEY in WAHA and the same value as webhook_secret here"
                ));
            }
            PlatformSettings::Waha { session }
        }
        PlatformKind::Evolution => {
            let instance = match &a.instance {
                Some(s) if is_plain_name(s.get_ref()) => s.get_ref().clone(),
                Some(s) => {
                    cx.err(
                        s.span(),
                        format!(
                            "accounts.{aid}.instance `{}` is not an Evolution instance name (letters, digits, `-`, `_`, `.`)",
                            s.get_ref()
                        ),
                    );
                    String::new()
                }
                None => {
                    cx.err(
                        id_span.clone(),
                        format!("accounts.{aid}: an evolution account needs `instance`, the instance name given to /instance/create"),
                    );
                    String::new()
                }
            };
            if a.token.is_none() {
                cx.err(
                    id_span,
                    format!("accounts.{aid}: an evolution account needs `token`, the instance's apikey (\"env:NAME\" reads it from the environment)"),
                );
            }
            if a.webhook_secret.is_none() {
                warnings.push(format!(
                    "accounts.{aid}: no webhook_secret: anyone who can reach the webhook URL can post messages; set it to a long random value and give the instance's webhook the header `apikey` with that value"
                ));
            } else {
                notes.push(format!(
                    "accounts.{aid} (evolution) accepts an event only when its `apikey` header (set in the instance's webhook `headers`) equals webhook_secret; without that header, when the event's own `apikey` field does, which Evolution fills in only with AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true (otherwise it is null and every event is refused with 401, and Evolution does not retry a 4xx)"
                ));
            }
            PlatformSettings::Evolution { instance }
        }
        PlatformKind::WhatsappCloud => {
            let phone_number_id = match &a.phone_number_id {
                Some(s)
                    if !s.get_ref().is_empty()
                        && s.get_ref().chars().all(|c| c.is_ascii_digit()) =>
                {
                    s.get_ref().clone()
                }
                Some(s) => {
                    cx.err(
                        s.span(),
                        format!(
                            "accounts.{aid}.phone_number_id `{}` must be the number's id from the WhatsApp Manager (digits only; not the phone number itself)",
                            s.get_ref()
                        ),
                    );
                    String::new()
                }
                None => {
                    cx.err(
                        id_span.clone(),
                        format!("accounts.{aid}: a whatsapp-cloud account needs `phone_number_id` (WhatsApp Manager > API setup)"),
                    );
                    String::new()
                }
            };
            let verify_token = secret(cx, &a.verify_token, &format!("accounts.{aid}.verify_token"));
            if a.verify_token.is_none() {
                cx.err(
                    id_span.clone(),
                    format!("accounts.{aid}: a whatsapp-cloud account needs `verify_token`, the token typed in the app's webhook settings (Meta sends it in the GET handshake)"),
                );
            }
            if a.token.is_none() {
                cx.err(
                    id_span,
                    format!("accounts.{aid}: a whatsapp-cloud account needs `token`, a system user access token (\"env:NAME\" reads it from the environment)"),
                );
            }
            if a.webhook_secret.is_none() {
                warnings.push(format!(
                    "accounts.{aid}: no webhook_secret: Meta signs every webhook with the app secret (X-Hub-Signature-256); set webhook_secret to it so forged posts are refused"
                ));
            }
            PlatformSettings::WhatsappCloud {
                phone_number_id,
                verify_token: verify_token.unwrap_or(Secret(String::new())),
            }
        }
    }
}

/// A WhatsApp JID in the one spelling the relay uses: the gateways write a
/// member as `32475123456@c.us` (WAHA) or `32475123456@s.whatsapp.net`
/// (Evolution, and WAHA's raw data), sometimes with a device suffix
/// (`32475123456:12@s.whatsapp.net`). All become `32475123456@c.us`, so a
/// group, a coordinator or a cooldown is the same whichever gateway saw it.
pub fn canonical_jid(jid: &str) -> String {
    let jid = jid.trim();
    let Some((user, server)) = jid.split_once('@') else {
        return jid.to_string();
    };
    let server = if server == "s.whatsapp.net" {
        "c.us"
    } else {
        server
    };
    let user = match server {
        // A device suffix names the linked device, not the person.
        "c.us" | "lid" => user.split(':').next().unwrap_or(user),
        _ => user,
    };
    format!("{user}@{server}")
}

/// Checks a group's `chat` for a WhatsApp platform; returns it canonical.
pub(super) fn check_chat(
    cx: &mut Cx,
    platform: PlatformKind,
    group: &str,
    span: Range<usize>,
    chat: ChatId,
) -> Option<ChatId> {
    let s = chat.as_str();
    match platform {
        PlatformKind::Waha | PlatformKind::Evolution => {
            let canonical = canonical_jid(s);
            let ok = canonical.ends_with("@g.us")
                || canonical.ends_with("@c.us")
                || canonical.ends_with("@lid");
            if !ok {
                cx.err(
                    span,
                    format!(
                        "group `{group}`: `{s}` is not a WhatsApp chat id; a group id ends in @g.us, like \"120363012345678901@g.us\" ({} lists them), a direct chat in @c.us or @lid",
                        if platform == PlatformKind::Waha {
                            "WAHA: GET /api/{session}/groups"
                        } else {
                            "Evolution: GET /group/fetchAllGroups/{instance}?getParticipants=false"
                        }
                    ),
                );
                return None;
            }
            ChatId::parse(&canonical).ok()
        }
        PlatformKind::WhatsappCloud => {
            if s.contains('@') {
                cx.err(
                    span,
                    format!(
                        "group `{group}`: `{s}` is a linked-device chat id; the Cloud API names a direct chat by the member's number (\"32475123456\") and a group by its Groups API id. An ordinary `@g.us` group needs platform = \"waha\" or \"evolution\""
                    ),
                );
                return None;
            }
            let digits = s.trim_start_matches('+');
            if digits.chars().all(|c| c.is_ascii_digit()) {
                // A number: WhatsApp ids are written without `+`.
                ChatId::parse(digits).ok()
            } else {
                Some(chat)
            }
        }
        PlatformKind::Sandbox | PlatformKind::Telegram => Some(chat),
    }
}

/// A WhatsApp business-scoped user id: a country code, a dot, letters and
/// digits (`BE.13491208655302741918`; a parent BSUID has `ENT.` inside).
fn is_bsuid(s: &str) -> bool {
    let Some((cc, rest)) = s.split_once('.') else {
        return false;
    };
    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
    cc.len() == 2
        && cc.chars().all(|c| c.is_ascii_uppercase())
        && !rest.is_empty()
        && rest.len() <= 128
        && rest.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Checks one coordinator or police id for a group on `platform`; returns it
/// in the spelling the platform's messages will carry.
pub(super) fn check_user_id(
    cx: &mut Cx,
    platform: PlatformKind,
    span: Range<usize>,
    id: String,
    what: &str,
) -> Option<String> {
    match platform {
        PlatformKind::Waha | PlatformKind::Evolution => {
            let c = canonical_jid(&id);
            if c.ends_with("@c.us") || c.ends_with("@lid") {
                Some(c)
            } else {
                cx.err(
                    span,
                    format!(
                        "{what}: `{id}` is not a WhatsApp user id; write the number as \"32475123456@c.us\" (country code, no + or spaces) or a \"...@lid\" id"
                    ),
                );
                None
            }
        }
        PlatformKind::WhatsappCloud => {
            let digits = id.trim_start_matches('+');
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                Some(digits.to_string())
            } else if is_bsuid(&id) {
                // A member with a username may have no number in webhooks.
                Some(id)
            } else {
                cx.err(
                    span,
                    format!(
                        "{what}: `{id}` is not a Cloud API user id; write the number as \"32475123456\" (country code, no + or spaces) or the business-scoped user id as \"BE.1234567890\""
                    ),
                );
                None
            }
        }
        PlatformKind::Sandbox | PlatformKind::Telegram => Some(id),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigErrors};

    fn load(accounts: &str, groups: &str) -> Result<Config, ConfigErrors> {
        Config::parse(&format!("{accounts}\n{groups}"), Path::new("wa.toml"))
    }

    fn errors(accounts: &str, groups: &str) -> Vec<String> {
        match load(accounts, groups) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const WAHA: &str = "[accounts.wa]\nplatform = \"waha\"\napi_url = \"http://waha:3000\"\ntoken = \"k\"\nwebhook_secret = \"h\"\n";

    fn groups(account: &str, a: &str, b: &str) -> String {
        format!(
            "[[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"{account}\"\nchat = \"{a}\"\n\
             [[groups]]\nid = \"b\"\nname = \"B\"\naccount = \"{account}\"\nchat = \"{b}\"\n"
        )
    }

    #[test]
    fn a_waha_network_with_group_ids_loads_with_the_default_session() {
        let c = load(
            WAHA,
            &groups("wa", "120363011111111111@g.us", "120363022222222222@g.us"),
        )
        .unwrap();
        let acc = c.accounts.values().next().unwrap();
        assert!(
            matches!(&acc.settings, PlatformSettings::Waha { session } if session == "default")
        );
        assert_eq!(acc.api_url, "http://waha:3000");
    }

    #[test]
    fn a_waha_chat_that_is_not_a_whatsapp_id_is_an_error_with_a_hint() {
        let errs = errors(WAHA, &groups("wa", "120363011111111111@g.us", "Veulen"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("wa.toml:16:8: group `b`"), "{errs:?}");
        assert!(errs[0].contains("@g.us") && errs[0].contains("GET /api/{session}/groups"));
    }

    #[test]
    fn the_same_group_through_waha_and_evolution_is_one_chat() {
        let accounts = format!(
            "{WAHA}[accounts.evo]\nplatform = \"evolution\"\napi_url = \"http://evo:8080\"\ninstance = \"heers\"\ntoken = \"k\"\n"
        );
        let g = "[[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"wa\"\nchat = \"120363011111111111@g.us\"\n\
                 [[groups]]\nid = \"b\"\nname = \"B\"\naccount = \"evo\"\nchat = \"120363011111111111@g.us\"\n";
        let errs = errors(&accounts, g);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("already the chat of group `a`"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_group_is_found_whichever_whatsapp_gateway_delivered_it() {
        let c = load(
            WAHA,
            &groups("wa", "120363011111111111@g.us", "120363022222222222@g.us"),
        )
        .unwrap();
        let chat = ChatId::parse("120363011111111111@g.us").unwrap();
        assert_eq!(
            c.group_by_chat(PlatformKind::Evolution, &chat)
                .map(|g| g.id.as_str()),
            Some("a")
        );
        assert!(
            c.group_by_chat(PlatformKind::WhatsappCloud, &chat)
                .is_none()
        );
    }

    #[test]
    fn a_cloud_api_account_without_phone_number_id_or_verify_token_is_an_error() {
        let acc = "[accounts.cloud]\nplatform = \"whatsapp-cloud\"\ntoken = \"EAAG\"\nwebhook_secret = \"app\"\n";
        let errs = errors(acc, &groups("cloud", "32475111111", "32475222222"));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs.iter().all(|e| e.starts_with("wa.toml:1:11:")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.contains("needs `phone_number_id`")));
        assert!(errs.iter().any(|e| e.contains("needs `verify_token`")));
    }

    #[test]
    fn a_g_us_group_on_the_cloud_api_is_refused_with_the_reason() {
        let acc = "[accounts.cloud]\nplatform = \"whatsapp-cloud\"\ntoken = \"EAAG\"\nphone_number_id = \"1234567890\"\nverify_token = \"v\"\n";
        let errs = errors(
            acc,
            &groups("cloud", "120363011111111111@g.us", "32475222222"),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("needs platform = \"waha\" or \"evolution\""),
            "{errs:?}"
        );
    }

    #[test]
    fn an_evolution_account_needs_its_instance_and_token() {
        let acc = "[accounts.evo]\nplatform = \"evolution\"\napi_url = \"http://evo:8080\"\n";
        let errs = errors(
            acc,
            &groups("evo", "120363011111111111@g.us", "120363022222222222@g.us"),
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("needs `instance`")));
        assert!(errs.iter().any(|e| e.contains("needs `token`")));
    }

    #[test]
    fn a_key_of_another_platform_is_refused_where_it_stands() {
        let acc = format!("{WAHA}instance = \"heers\"\n");
        let errs = errors(
            &acc,
            &groups("wa", "120363011111111111@g.us", "120363022222222222@g.us"),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("wa.toml:6:12:"), "{errs:?}");
        assert!(errs[0].contains("only for platform = \"evolution\""));
    }

    #[test]
    fn a_waha_account_without_api_url_is_an_error() {
        let acc = "[accounts.wa]\nplatform = \"waha\"\n";
        let errs = errors(
            acc,
            &groups("wa", "120363011111111111@g.us", "120363022222222222@g.us"),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("needs `api_url`"), "{errs:?}");
    }

    #[test]
    fn whatsapp_coordinators_are_kept_in_one_spelling_and_a_bare_number_is_refused() {
        let g = "[[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"wa\"\nchat = \"120363011111111111@g.us\"\n\
                 coordinators = [\"32475111111@s.whatsapp.net\", \"123456789012345@lid\"]\n\
                 [[groups]]\nid = \"b\"\nname = \"B\"\naccount = \"wa\"\nchat = \"120363022222222222@g.us\"\n\
                 police = [\"+32 475 22 22 22\"]\n";
        let errs = errors(WAHA, g);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("32475123456@c.us"), "{errs:?}");
        let ok = g.replace("+32 475 22 22 22", "32475222222@c.us");
        let c = load(WAHA, &ok).unwrap();
        let a = &c.groups[0];
        assert!(a.coordinators.contains("32475111111@c.us"));
        assert!(a.coordinators.contains("123456789012345@lid"));
    }

    #[test]
    fn a_device_suffix_and_the_s_whatsapp_net_spelling_become_one_jid() {
        assert_eq!(
            canonical_jid("32475111111:12@s.whatsapp.net"),
            "32475111111@c.us"
        );
        assert_eq!(canonical_jid("32475111111@c.us"), "32475111111@c.us");
        assert_eq!(
            canonical_jid("120363011111111111@g.us"),
            "120363011111111111@g.us"
        );
        assert_eq!(canonical_jid("98765:3@lid"), "98765@lid");
    }
}
