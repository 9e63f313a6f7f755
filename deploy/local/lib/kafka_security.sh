# shellcheck shell=bash
# HITL_KAFKA_SECURITY=sasl_ssl: the local broker with TLS, SCRAM-SHA-512 users and ACLs,
# as a production cluster should run. Sourced by infra.sh after kafka.sh.
#
# - A private CA and a broker certificate (SAN IP:127.0.0.1, DNS:localhost), made with
#   openssl on first start and kept in $KAFKA_STATE/secrets (mode 700; keys mode 600).
# - Clients: SASL_SSL listener, SCRAM-SHA-512 only. One user per service plus `admin`
#   (a super user) and `hitl-client`; passwords are random, generated once into
#   secrets/<user>.password and registered when the storage is formatted
#   (`kafka-storage format --add-scram`), so no unauthenticated moment ever exists.
# - The KRaft controller listener is TLS with client certificates: only the broker's own
#   certificate (a super user) gets in, never an anonymous connection.
# - StandardAuthorizer, nothing allowed unless granted: deploy/local/kafka/acls.txt,
#   applied by ApplyAcls.java after a start when the table changed (creating an
#   existing ACL is a no-op; nothing is removed: `reset` for a clean slate).

KAFKA_SECRETS="$KAFKA_STATE/secrets"
KAFKA_USERS=(admin hitl-agent hitl-approval hitl-notifier hitl-client)
KAFKA_BROKER_DN="CN=hitl-kafka-broker"
KAFKA_ADMIN_PROPERTIES="$KAFKA_SECRETS/admin.properties"

kafka_secure() { [[ $HITL_KAFKA_SECURITY == sasl_ssl ]]; }

kafka_password() { cat "$KAFKA_SECRETS/$1.password"; }

# Idempotent: only what is missing is generated, so passwords and the CA survive restarts.
kafka_secrets_init() {
  kafka_secure || return 0
  require_cmd openssl "install openssl (Debian: apt-get install openssl)"
  mkdir -p "$KAFKA_SECRETS"
  chmod 700 "$KAFKA_SECRETS"
  local old_umask user
  old_umask=$(umask)
  umask 077
  for user in "${KAFKA_USERS[@]}" keystore; do
    [[ -s $KAFKA_SECRETS/$user.password ]] && continue
    # 32 random bytes, base64 without '=/+' so it is safe in JAAS and properties files.
    openssl rand -base64 48 | tr -d '\n=/+' | cut -c1-40 >"$KAFKA_SECRETS/$user.password"
  done
  if [[ ! -s $KAFKA_SECRETS/ca.crt ]]; then
    log "generating a local CA and the broker certificate in $KAFKA_SECRETS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=hitl local Kafka CA" \
      -keyout "$KAFKA_SECRETS/ca.key" -out "$KAFKA_SECRETS/ca.crt" 2>/dev/null
    rm -f "$KAFKA_SECRETS/broker.crt"
  fi
  if [[ ! -s $KAFKA_SECRETS/broker.p12 || ! -s $KAFKA_SECRETS/broker.crt ]]; then
    openssl req -newkey rsa:2048 -nodes -subj "/$KAFKA_BROKER_DN" \
      -keyout "$KAFKA_SECRETS/broker.key" -out "$KAFKA_SECRETS/broker.csr" 2>/dev/null
    # serverAuth for clients, clientAuth for the broker's own connection to the controller.
    printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
      "$HITL_HOST" >"$KAFKA_SECRETS/broker.ext"
    openssl x509 -req -in "$KAFKA_SECRETS/broker.csr" -days 825 -sha256 \
      -CA "$KAFKA_SECRETS/ca.crt" -CAkey "$KAFKA_SECRETS/ca.key" -CAcreateserial \
      -extfile "$KAFKA_SECRETS/broker.ext" -out "$KAFKA_SECRETS/broker.crt" 2>/dev/null
    openssl pkcs12 -export -name broker -in "$KAFKA_SECRETS/broker.crt" \
      -inkey "$KAFKA_SECRETS/broker.key" -certfile "$KAFKA_SECRETS/ca.crt" \
      -passout "file:$KAFKA_SECRETS/keystore.password" -out "$KAFKA_SECRETS/broker.p12"
    rm -f "$KAFKA_SECRETS/broker.csr" "$KAFKA_SECRETS/broker.ext"
  fi
  # Java properties for the admin tools (readiness probe, ACLs): the super user.
  cat >"$KAFKA_ADMIN_PROPERTIES" <<EOF
bootstrap.servers=$HITL_HOST:$HITL_KAFKA_PORT
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(kafka_password admin)";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_SECRETS/ca.crt
EOF
  umask "$old_umask"
}

# The listener part of server.properties (appended by kafka_write_config).
kafka_listener_config() {
  if ! kafka_secure; then
    cat <<EOF
listeners=PLAINTEXT://$HITL_HOST:$HITL_KAFKA_PORT,CONTROLLER://$HITL_HOST:$HITL_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HITL_HOST:$HITL_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
    return 0
  fi
  cat <<EOF
listeners=SASL_SSL://$HITL_HOST:$HITL_KAFKA_PORT,CONTROLLER://$HITL_HOST:$HITL_KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$HITL_HOST:$HITL_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL

# TLS: the broker's key and certificate; clients and the controller trust our CA.
ssl.keystore.type=PKCS12
ssl.keystore.location=$KAFKA_SECRETS/broker.p12
ssl.keystore.password=$(kafka_password keystore)
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_SECRETS/ca.crt
ssl.endpoint.identification.algorithm=https
# The controller admits only certificate holders (the broker), never anonymous callers.
listener.name.controller.ssl.client.auth=required

# Clients authenticate with SCRAM-SHA-512 (users created at format time).
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(kafka_password admin)";

# Nothing is allowed unless acls.txt grants it.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:$KAFKA_BROKER_DN
EOF
}

# Extra arguments for `StorageTool format`: one SCRAM credential per user.
kafka_format_args() {
  kafka_secure || return 0
  local user
  for user in "${KAFKA_USERS[@]}"; do
    printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$user,password=$(kafka_password "$user")]"
  done
}

# Extra lines for the readiness probe's admin client properties.
kafka_probe_properties() {
  kafka_secure || return 0
  cat "$KAFKA_ADMIN_PROPERTIES"
}

kafka_apply_acls() {
  kafka_secure || return 0
  kafka_secrets_init   # the admin properties follow port changes
  local acls="${HITL_KAFKA_ACLS:-$HITL_DEPLOY_DIR/kafka/acls.txt}" t0 stamp
  # ACLs live in the cluster's metadata log: after a restart with the same table
  # there is nothing to do, and the JVM it would take costs about 4 s.
  stamp=$(cat "$acls" <(echo "prefix=${HITL_KAFKA_ACL_PREFIX:-}") | cksum)
  if [[ -f $KAFKA_STATE/acls.applied && $(<"$KAFKA_STATE/acls.applied") == "$stamp" ]]; then
    return 0
  fi
  t0=$(now_ms)
  kafka_tool "$HITL_DEPLOY_DIR/kafka/ApplyAcls.java" "$KAFKA_ADMIN_PROPERTIES" "$acls" \
    "${HITL_KAFKA_ACL_PREFIX:-}" 2>"$KAFKA_STATE/acls.log" \
    || { show_logs "$KAFKA_STATE/acls.log"; die "applying $acls failed (log above)"; }
  echo "$stamp" >"$KAFKA_STATE/acls.applied"
  log "ACLs from $acls applied in $(elapsed_s "$t0")s"
}

# `infra.sh env`: how a client reaches this broker, as HITL_KAFKA_USER [admin].
kafka_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=$HITL_HOST:$HITL_KAFKA_PORT"
  if ! kafka_secure; then
    return 0
  fi
  local user="${HITL_KAFKA_USER:-admin}"
  [[ -s $KAFKA_SECRETS/$user.password ]] \
    || die "no Kafka user $user (known: ${KAFKA_USERS[*]}); has the broker been started?"
  echo "export KAFKA_SECURITY_PROTOCOL=SASL_SSL"
  echo "export KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
  echo "export KAFKA_SASL_USERNAME=$user"
  echo "export KAFKA_SASL_PASSWORD_FILE=$KAFKA_SECRETS/$user.password"
  echo "export KAFKA_SSL_CAFILE=$KAFKA_SECRETS/ca.crt"
}
