/* security.c: encryption keys and labels: the keyring, its observer and
 * the security settings changed at run time. */
#include "core/node_int.h"

#include <stdio.h>
#include <string.h>

/* ===== Encryption and labels ===== */

void node_nonce(struct node *nd, uint8_t nonce[KEYRING_NONCE])
{
    nd->io.random(nd->io.ctx, nonce, KEYRING_NONCE);
}

const struct keyring *node_keyring(const struct node *nd)
{
    return &nd->keyring;
}

void node_set_keyring_observer(struct node *nd, node_keyring_fn fn, void *ud)
{
    nd->keyring_fn = fn;
    nd->keyring_ud = ud;
}

int node_keyring_changed(struct node *nd, char *err, size_t errlen)
{
    if (nd->keyring_fn == NULL)
        return 0;
    return nd->keyring_fn(nd->keyring_ud, &nd->keyring, err, errlen);
}

/* Log a change without naming the key: its position is enough. */
static void keyring_changed(struct node *nd, const char *what)
{
    HS_INFO(nd->log, "keyring: %s: keys=%zu", what, nd->keyring.n);
    char err[256] = "";
    if (node_keyring_changed(nd, err, sizeof err))
        HS_ERROR(nd->log, "keyring: %s", err);
}

int node_keyring_install(struct node *nd, const uint8_t *key, size_t len)
{
    bool had = keyring_find(&nd->keyring, key, len) >= 0;
    int rc = keyring_add(&nd->keyring, key, len);
    if (rc == 0 && !had)
        keyring_changed(nd, nd->keyring.n == 1 ? "key installed as primary "
                                                 "(encryption on)"
                                               : "key installed");
    return rc;
}

int node_reconfigure_security(struct node *nd, const struct config *cfg,
                              char *err, size_t errlen)
{
    struct config c;
    /* Check the settings as they would be, on a copy. */
    if (config_copy(&c, &nd->cfg)) {
        snprintf(err, errlen, "out of memory");
        return HS_ENOMEM;
    }
    c.gossip_verify_incoming = cfg->gossip_verify_incoming;
    c.gossip_verify_outgoing = cfg->gossip_verify_outgoing;
    c.skip_inbound_label_check = cfg->skip_inbound_label_check;
    memcpy(c.label, cfg->label, sizeof c.label);
    memcpy(c.encrypt, cfg->encrypt, sizeof c.encrypt);
    memcpy(c.encrypt_passphrase, cfg->encrypt_passphrase,
           sizeof c.encrypt_passphrase);
    uint8_t key[KEYRING_KEY_MAX];
    size_t keylen = 0;
    int rc = config_validate(&c, err, errlen);
    if (rc == 0)
        rc = config_secret_key(&c, key, &keylen);
    if (rc) {
        config_free(&c);
        return HS_EINVAL;
    }
    bool changed =
        nd->cfg.gossip_verify_incoming != c.gossip_verify_incoming ||
        nd->cfg.gossip_verify_outgoing != c.gossip_verify_outgoing ||
        nd->cfg.skip_inbound_label_check != c.skip_inbound_label_check ||
        strcmp(nd->cfg.label, c.label);
    nd->cfg.gossip_verify_incoming = c.gossip_verify_incoming;
    nd->cfg.gossip_verify_outgoing = c.gossip_verify_outgoing;
    nd->cfg.skip_inbound_label_check = c.skip_inbound_label_check;
    memcpy(nd->cfg.label, c.label, sizeof nd->cfg.label);
    memcpy(nd->cfg.encrypt, c.encrypt, sizeof c.encrypt);
    memcpy(nd->cfg.encrypt_passphrase, c.encrypt_passphrase,
           sizeof c.encrypt_passphrase);
    config_free(&c);
    if (changed) {
        char lb[CONFIG_LABEL_MAX * 4 + 1];
        HS_INFO(
            nd->log,
            "security settings: gossip_verify_incoming=%s "
            "gossip_verify_outgoing=%s label=\"%s\" "
            "skip_inbound_label_check=%s",
            nd->cfg.gossip_verify_incoming ? "true" : "false",
            nd->cfg.gossip_verify_outgoing ? "true" : "false",
            hs_log_quote(nd->cfg.label, strlen(nd->cfg.label), lb, sizeof lb),
            nd->cfg.skip_inbound_label_check ? "true" : "false");
    }
    /* A configured key starts encryption on a node without one; once
     * there is a keyring, hearsay keys manages it. */
    if (keylen && keyring_empty(&nd->keyring))
        rc = node_keyring_install(nd, key, keylen);
    else if (keylen && keyring_find(&nd->keyring, key, keylen) < 0)
        HS_INFO(nd->log,
                "keyring: the configured key is not installed; "
                "the keyring is managed with hearsay keys once it has a "
                "key");
    keyring_wipe(key, sizeof key);
    return rc;
}
