//! The CA chain in each of the three modes: loading it, creating what edgesec owns, renewing.

use std::path::Path;
use std::sync::Arc;

use edgesec_keys::KeyStore;
use rcgen::Issuer;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::certinfo::{CertInfo, issued_by};
use crate::config::{CaMode, EdgeCaConfig, KeySource, PemFile};
use crate::error::{PkiError, Result};
use crate::owned::{
    CaState, Owned, Slot, Unusable, build_root, build_sub_ca, clean_retired, load_owned,
    replace_owned, resolve_user_key,
};
use crate::remote_key::RemoteKey;
use crate::store::{self, Layout};

const DEFAULT_ROOT_CN: &str = "edgesec device root CA";
const DEFAULT_EDGE_CN: &str = "edgesec edge CA";

/// Everything the CA needs to work with the key store and the state dir.
pub(crate) struct Ctx {
    pub store: Arc<dyn KeyStore>,
    pub layout: Layout,
    pub cfg: EdgeCaConfig,
    /// Certificates from the user's trust bundle file.
    pub user_bundle: Vec<CertificateDer<'static>>,
}

/// A loaded, consistent CA chain, ready to sign module certificates.
pub(crate) struct Chain {
    pub mode: CaMode,
    pub edge: Owned,
    pub issuer: Issuer<'static, RemoteKey>,
    /// What signed the edge CA: the quickstart root, or the upstream CA of issued mode.
    pub parent: Option<Owned>,
    /// Certificates between the edge CA and the root, leaf side first.
    pub intermediates: Vec<CertInfo>,
    /// Self-signed roots at the top of the chain, where known.
    pub anchors: Vec<CertInfo>,
    /// PEM of the edge CA and every intermediate up to (not including) a root.
    pub chain_pem: String,
    pub bundle_pem: String,
}

impl Chain {
    fn new(
        ctx: &Ctx,
        mode: CaMode,
        edge: Owned,
        parent: Option<Owned>,
        intermediates: Vec<CertInfo>,
        anchors: Vec<CertInfo>,
    ) -> Result<Chain> {
        let key = RemoteKey::load(ctx.store.clone(), &edge.key)?;
        let issuer = Issuer::from_ca_cert_der(&edge.cert.der, key)?;
        let chain: Vec<CertificateDer<'static>> = std::iter::once(&edge.cert)
            .chain(&intermediates)
            .filter(|c| !c.self_signed)
            .map(|c| c.der.clone())
            .collect();
        let roots: Vec<_> = anchors.iter().map(|c| c.der.clone()).collect();
        let bundle_pem = crate::bundle::assemble(&[&roots, &chain, &ctx.user_bundle]);
        Ok(Chain {
            mode,
            chain_pem: store::certs_to_pem(&chain),
            edge,
            issuer,
            parent,
            intermediates,
            anchors,
            bundle_pem,
        })
    }

    /// The earliest expiry of any certificate in the chain.
    pub fn earliest_expiry(&self) -> OffsetDateTime {
        std::iter::once(&self.edge.cert)
            .chain(self.parent.as_ref().map(|p| &p.cert))
            .chain(&self.intermediates)
            .chain(&self.anchors)
            .map(|c| c.not_after)
            .min()
            .unwrap_or(self.edge.cert.not_after)
    }
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

/// Reads a user's chain file: the first certificate, then each one's issuer. Returns the first,
/// the intermediates above it and the self-signed root at the top, if the file has one.
fn read_user_chain(file: &PemFile, what: &str) -> Result<(CertInfo, Vec<CertInfo>, Vec<CertInfo>)> {
    let path = &file.0;
    let certs = store::read_certs(path)?.ok_or_else(|| {
        PkiError::Config(format!("the {what} file {} does not exist", path.display()))
    })?;
    let infos = certs
        .iter()
        .map(|c| CertInfo::parse(c).map_err(|e| PkiError::corrupt(path, e)))
        .collect::<Result<Vec<_>>>()?;
    for (i, pair) in infos.windows(2).enumerate() {
        if !issued_by(&pair[0], &pair[1]) {
            return Err(PkiError::corrupt(
                path,
                format!(
                    "certificate {} is not issued by certificate {}; list the chain from the {what} \
                     up to the root",
                    i + 1,
                    i + 2
                ),
            ));
        }
    }
    let mut rest = infos;
    let first = rest.remove(0);
    if !first.is_ca {
        return Err(PkiError::corrupt(
            path,
            format!("the {what} is not a CA certificate"),
        ));
    }
    let (anchors, intermediates): (Vec<_>, Vec<_>) = rest.into_iter().partition(|c| c.self_signed);
    Ok((first, intermediates, anchors))
}

fn warn_not_renewed(what: &str, cert: &CertInfo, path: &Path, now: OffsetDateTime) {
    if cert.not_after <= now {
        tracing::error!(
            subject = %cert.subject, path = %path.display(), expired = %crate::rfc3339(cert.not_after),
            "the {what} has expired; edgesec cannot renew it: replace the file"
        );
    } else {
        tracing::warn!(
            subject = %cert.subject, path = %path.display(), expires = %crate::rfc3339(cert.not_after),
            "the {what} is provided by the user and will not be renewed by edgesec"
        );
    }
}

/// Loads the chain of the configured mode. Owned certificates that are missing or unusable are
/// made anew only when `allow_create` (a sane clock); otherwise the error says what is missing.
/// Returns the chain and whether any certificate was made.
pub(crate) fn establish(
    ctx: &Ctx,
    now: OffsetDateTime,
    allow_create: bool,
) -> Result<(Chain, bool)> {
    match ctx.cfg.mode {
        CaMode::Quickstart => establish_owned(ctx, now, allow_create, None),
        CaMode::Issued => {
            let upstream = load_upstream(ctx, now)?;
            establish_owned(ctx, now, allow_create, Some(upstream))
        }
        CaMode::Provided => {
            let file = ctx
                .cfg
                .cert
                .as_ref()
                .ok_or_else(|| PkiError::Config("no cert".into()))?;
            let source = ctx
                .cfg
                .pk
                .as_ref()
                .ok_or_else(|| PkiError::Config("no pk".into()))?;
            let (edge, intermediates, mut anchors) = read_user_chain(file, "edge CA")?;
            let key = resolve_user_key(ctx.store.as_ref(), source, &edge, "provided")?;
            warn_not_renewed("provided edge CA", &edge, &file.0, now);
            if edge.self_signed {
                anchors.insert(0, edge.clone());
            }
            let edge = Owned { cert: edge, key };
            Ok((
                Chain::new(ctx, CaMode::Provided, edge, None, intermediates, anchors)?,
                false,
            ))
        }
    }
}

/// The upstream CA of issued mode with its key, and the rest of its chain.
struct Upstream {
    parent: Owned,
    intermediates: Vec<CertInfo>,
    anchors: Vec<CertInfo>,
}

fn load_upstream(ctx: &Ctx, now: OffsetDateTime) -> Result<Upstream> {
    let file = ctx
        .cfg
        .issuer_cert
        .as_ref()
        .ok_or_else(|| PkiError::Config("no issuer_cert".into()))?;
    let source: &KeySource = ctx
        .cfg
        .issuer_pk
        .as_ref()
        .ok_or_else(|| PkiError::Config("no issuer_pk".into()))?;
    let (upstream, intermediates, mut anchors) = read_user_chain(file, "upstream CA")?;
    let key = resolve_user_key(ctx.store.as_ref(), source, &upstream, "upstream")?;
    warn_not_renewed("upstream CA", &upstream, &file.0, now);
    if upstream.self_signed {
        anchors.insert(0, upstream.clone());
    }
    Ok(Upstream {
        parent: Owned {
            cert: upstream,
            key,
        },
        intermediates,
        anchors,
    })
}

fn establish_owned(
    ctx: &Ctx,
    now: OffsetDateTime,
    allow_create: bool,
    upstream: Option<Upstream>,
) -> Result<(Chain, bool)> {
    let store = ctx.store.as_ref();
    let mut state = CaState::load(&ctx.layout);
    let mut made = false;
    let unusable = |slot: Slot, why: Unusable| -> Result<()> {
        let path = slot.path(&ctx.layout);
        match (&why, allow_create) {
            (Unusable::Missing, true) => {
                tracing::info!(path = %path.display(), "creating the {} CA certificate", slot.name());
                Ok(())
            }
            (Unusable::Bad(reason), true) => {
                tracing::error!(%reason, "the {} CA certificate is unusable; making a new one", slot.name());
                Ok(())
            }
            (Unusable::Missing, false) => Err(PkiError::NotReady(format!(
                "{} does not exist yet and cannot be created while the clock is wrong",
                path.display()
            ))),
            (Unusable::Bad(reason), false) => Err(PkiError::NotReady(format!(
                "{reason}; it cannot be replaced while the clock is wrong"
            ))),
        }
    };

    let (parent, intermediates, anchors) = match upstream {
        Some(u) => (u.parent, u.intermediates, u.anchors),
        None => {
            let accept = |c: &CertInfo| {
                if c.self_signed && c.is_ca {
                    Ok(())
                } else {
                    Err("not a self-signed CA certificate".to_string())
                }
            };
            let root = match load_owned(store, &ctx.layout, &mut state, Slot::Root, accept)? {
                Ok(root) => root,
                Err(why) => {
                    unusable(Slot::Root, why)?;
                    made = true;
                    make_root(ctx, &mut state, now, false)?
                }
            };
            let anchors = vec![root.cert.clone()];
            (root, Vec::new(), anchors)
        }
    };

    let accept = |c: &CertInfo| {
        if c.is_ca && issued_by(c, &parent.cert) {
            Ok(())
        } else {
            Err(format!(
                "not a CA certificate issued by {}",
                parent.cert.subject
            ))
        }
    };
    let edge = match load_owned(store, &ctx.layout, &mut state, Slot::Edge, accept)? {
        Ok(edge) => edge,
        Err(why) => {
            unusable(Slot::Edge, why)?;
            made = true;
            make_edge(ctx, &mut state, now, &parent, false)?
        }
    };
    state.save(&ctx.layout)?;
    clean_retired(store, &ctx.layout, &mut state);
    let intermediates = if parent.cert.self_signed {
        intermediates
    } else {
        std::iter::once(parent.cert.clone())
            .chain(intermediates)
            .collect()
    };
    let chain = Chain::new(
        ctx,
        ctx.cfg.mode,
        edge,
        Some(parent),
        intermediates,
        anchors,
    )?;
    Ok((chain, made))
}

fn make_root(ctx: &Ctx, state: &mut CaState, now: OffsetDateTime, rotate: bool) -> Result<Owned> {
    let cn = ctx
        .cfg
        .root_common_name
        .as_deref()
        .unwrap_or(DEFAULT_ROOT_CN);
    let lifetime = days(ctx.cfg.root_expiry_days);
    let root = replace_owned(
        &ctx.store,
        &ctx.layout,
        state,
        Slot::Root,
        ctx.cfg.key_algorithm,
        rotate,
        |key| build_root(key, cn, now, lifetime),
    )?;
    tracing::info!(
        subject = %root.cert.subject, key = %root.key, not_after = %crate::rfc3339(root.cert.not_after),
        "made a new device root CA certificate"
    );
    Ok(root)
}

fn make_edge(
    ctx: &Ctx,
    state: &mut CaState,
    now: OffsetDateTime,
    parent: &Owned,
    rotate: bool,
) -> Result<Owned> {
    let cn = ctx.cfg.common_name.as_deref().unwrap_or(DEFAULT_EDGE_CN);
    let lifetime = days(ctx.cfg.expiry_days);
    let parent_key = RemoteKey::load(ctx.store.clone(), &parent.key)?;
    let edge = replace_owned(
        &ctx.store,
        &ctx.layout,
        state,
        Slot::Edge,
        ctx.cfg.key_algorithm,
        rotate,
        |key| build_sub_ca(key, cn, now, lifetime, parent, &parent_key),
    )?;
    tracing::info!(
        subject = %edge.cert.subject, key = %edge.key, not_after = %crate::rfc3339(edge.cert.not_after),
        "made a new edge CA certificate"
    );
    Ok(edge)
}

/// Renews the owned part of `chain`: the root too when `renew_root` (quickstart only), then the
/// edge CA. Keys are rotated when the policy says so.
pub(crate) fn renew(
    ctx: &Ctx,
    chain: &Chain,
    now: OffsetDateTime,
    renew_root: bool,
) -> Result<Chain> {
    if chain.mode == CaMode::Provided {
        return Err(PkiError::Config(
            "a provided edge CA is never renewed".into(),
        ));
    }
    let rotate = ctx.cfg.auto_renew.rotate_key;
    let mut state = CaState::load(&ctx.layout);
    let parent = chain
        .parent
        .clone()
        .ok_or_else(|| PkiError::NotReady("the edge CA has no issuer".into()))?;
    let (parent, anchors) = if renew_root && chain.mode == CaMode::Quickstart {
        let root = make_root(ctx, &mut state, now, rotate)?;
        let anchors = vec![root.cert.clone()];
        (root, anchors)
    } else {
        (parent, chain.anchors.clone())
    };
    let edge = make_edge(ctx, &mut state, now, &parent, rotate)?;
    clean_retired(ctx.store.as_ref(), &ctx.layout, &mut state);
    Chain::new(
        ctx,
        chain.mode,
        edge,
        Some(parent),
        chain.intermediates.clone(),
        anchors,
    )
}
