-- /etc/hearsay/hearsay.lua: the configuration of the agent that
-- hearsay.service runs (hearsay agent --config /etc/hearsay/hearsay.lua).
--
-- Each key is a global; docs/configuration.md has every key. After an
-- edit, `systemctl reload hearsay` applies the scripts, the security
-- settings, the label and the control token; `systemctl restart hearsay`
-- (a graceful leave, then a start) the rest. A key or a token here is a
-- secret: with the hearsay user of the package (systemd-sysusers), keep
-- this file `chmod 640` and `chgrp hearsay`.

-- A name unique in the cluster (default: the host name).
-- name = "web-1"

-- UDP and TCP; open the port between all members. Bound to 0.0.0.0, the
-- agent advertises its first non-loopback address; set `advertise` when
-- others reach it at another one.
bind = "0.0.0.0:7946"
-- advertise = "10.0.0.5:7946"

-- Members to join at start-up, tried again every retry_interval until
-- one answers (serf's retry_join). Empty: this node starts a cluster.
retry_join = {}
-- retry_join = { "10.0.0.1:7946", "10.0.0.2:7946" }

-- The cluster metadata and the known members, kept across restarts;
-- systemd makes the directory (StateDirectory=hearsay).
data_dir = "/var/lib/hearsay"

-- Encryption: `hearsay keygen` makes a key. The keyring file is created
-- from `encrypt` at the first start and kept up to date by `hearsay keys`.
-- encrypt = "..."
-- keyring_file = "/var/lib/hearsay/keyring"

-- The CLI's endpoint (`hearsay members`); keep it on loopback.
control = "127.0.0.1:7374"

-- Prometheus metrics at /metrics (no authentication: loopback only).
-- metrics = "127.0.0.1:9100"

-- Hook scripts, relative to this file (docs/hooks.md); reloaded by
-- `systemctl reload hearsay`.
-- scripts = { "hooks.lua" }
