# shellcheck shell=bash
# FerretDB 1.x: a MongoDB wire-protocol server on SQLite (HITL_STORE_BACKEND=sqlite, the
# default: no other database) or on PostgreSQL (postgresql.sh). Built from its Go module;
# sourced by infra.sh.

FERRETDB_MODULE="github.com/FerretDB/FerretDB"
# The cache key names our patch level too, so a changed patch rebuilds (see below).
FERRETDB_PATCH_LEVEL="idpath2-gc2-rbw1-rt1-del1-rep2"
FERRETDB_HOME_DIR="$HITL_CACHE_DIR/ferretdb-$HITL_FERRETDB_VERSION-$FERRETDB_PATCH_LEVEL"
FERRETDB_BIN="$FERRETDB_HOME_DIR/ferretdb"
FERRETDB_STATE="$HITL_STATE_DIR/ferretdb"
FERRETDB_DATA="$FERRETDB_STATE/data"
# Durable commits on SQLite too: FerretDB sets journal_mode(wal) and leaves synchronous
# at what its driver gives, under which a commit is not flushed to disk (strace: 14
# fsyncs for 100 inserts; with synchronous(full) 87). HITL_SQLITE_SYNCHRONOUS=normal
# gives back the old behaviour (a power cut may lose the last commits, never corrupts).
FERRETDB_SQLITE_ARG="--sqlite-url=file:$FERRETDB_DATA/?_pragma=synchronous($HITL_SQLITE_SYNCHRONOUS)"
if [[ -n ${HITL_SQLITE_CACHE_MB:-} ]]; then
  FERRETDB_SQLITE_ARG+="&_pragma=cache_size(-$((HITL_SQLITE_CACHE_MB * 1024)))"
fi
if [[ -n ${HITL_SQLITE_WAL_AUTOCHECKPOINT:-} ]]; then
  FERRETDB_SQLITE_ARG+="&_pragma=wal_autocheckpoint($HITL_SQLITE_WAL_AUTOCHECKPOINT)"
fi
# Process markers: the state dir of each backend (the SQLite one as before this setting).
FERRETDB_SQLITE_MARKER="--state-dir=$FERRETDB_STATE/state"
FERRETDB_PG_ARG="--state-dir=$FERRETDB_STATE/state-postgresql"
FERRETDB_PIDFILE="$FERRETDB_STATE/ferretdb.pid"
FERRETDB_LOG="$FERRETDB_STATE/ferretdb.log"
case "$HITL_STORE_BACKEND" in
  sqlite) FERRETDB_MARKER=$FERRETDB_SQLITE_MARKER; FERRETDB_OTHER_MARKER=$FERRETDB_PG_ARG ;;
  postgresql) FERRETDB_MARKER=$FERRETDB_PG_ARG; FERRETDB_OTHER_MARKER=$FERRETDB_SQLITE_MARKER ;;
  *) die "HITL_STORE_BACKEND=$HITL_STORE_BACKEND: use sqlite or postgresql" ;;
esac
# PostgreSQL's cluster. Its server runs as `postgres` when we are root, and that user
# cannot enter root's home, so a root-run cluster lives under /var/lib/hitl, named
# after the state dir (one cluster per instance, like everything else here).
POSTGRES_PIDFILE="$FERRETDB_STATE/postgres.pid"
POSTGRES_LOG="$FERRETDB_STATE/postgres.log"
POSTGRES_PASSWORD_FILE="$FERRETDB_STATE/postgres.password"
if [[ -n ${HITL_POSTGRES_DATA:-} ]]; then
  POSTGRES_DATA=$HITL_POSTGRES_DATA
elif [[ $(id -u) == 0 ]]; then
  POSTGRES_DATA="/var/lib/hitl/postgresql-$(printf '%s' "$HITL_STATE_DIR" | md5sum | cut -c1-12)"
else
  POSTGRES_DATA="$FERRETDB_STATE/postgresql"
fi

# --- install -----------------------------------------------------------------

# Why not `go install .../cmd/ferretdb@version`: the module as published lacks
# the generated build/version/version.txt, and a binary whose main module is
# FerretDB panics at start-up without it. So: download the module source,
# copy it somewhere writable, write version.txt, build there. The binary lands
# in the cache keyed by version, so later starts never rebuild.
ferretdb_install() {
  [[ -x $FERRETDB_BIN ]] && return 0
  require_cmd go "install Go >= 1.21 (it fetches the Go 1.24 toolchain FerretDB asks for by itself)"
  local t0 tmp module_dir
  t0=$(now_ms)
  tmp="$HITL_CACHE_DIR/.ferretdb-$HITL_FERRETDB_VERSION.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building FerretDB $HITL_FERRETDB_VERSION from its Go module (takes a minute or two)"
  # Run from an empty dir so no surrounding go.mod/go.work interferes.
  module_dir=$(cd "$tmp" && GOFLAGS= GOWORK=off GO111MODULE=on \
    go mod download -json "$FERRETDB_MODULE@$HITL_FERRETDB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p') \
    || die "go mod download $FERRETDB_MODULE@$HITL_FERRETDB_VERSION failed"
  [[ -n $module_dir && -f $module_dir/go.mod ]] \
    || die "go mod download gave no source dir for $FERRETDB_MODULE@$HITL_FERRETDB_VERSION"
  cp -R "$module_dir" "$tmp/src"
  chmod -R u+w "$tmp/src"   # the module cache is read-only
  echo "$HITL_FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
  ferretdb_patch_id_lookup "$tmp/src"
  ferretdb_patch_pg_id_lookup "$tmp/src"
  ferretdb_patch_sqlite_group_commit "$tmp/src"
  ferretdb_patch_read_before_write "$tmp/src"
  ferretdb_patch_resource_tracking "$tmp/src"
  ferretdb_patch_delete_by_id "$tmp/src"
  ferretdb_patch_replace_by_id "$tmp/src"
  # CGO off: the SQLite driver is pure Go, and a static binary needs no gcc.
  # -buildvcs=false: the copy is not a git checkout (and must not pick up ours).
  if ! (cd "$tmp/src" && GOFLAGS= GOWORK=off CGO_ENABLED=0 \
      go build -buildvcs=false -trimpath -o "$tmp/ferretdb" ./cmd/ferretdb) >"$tmp/build.log" 2>&1; then
    show_logs "$tmp/build.log"
    die "building FerretDB failed (log above, kept in $tmp)"
  fi
  "$tmp/ferretdb" --version >/dev/null 2>&1 || die "built FerretDB binary does not run: $tmp/ferretdb"
  mkdir -p "$FERRETDB_HOME_DIR"
  mv "$tmp/ferretdb" "$FERRETDB_BIN"
  rm -rf "$tmp"
  log "FerretDB $HITL_FERRETDB_VERSION built in $(elapsed_s "$t0")s"
}

# FerretDB 1.24's SQLite backend filters `{_id: x}` with the path `sjson->'$._id'`,
# while the unique index on _id is built on `sjson->"_id"`; SQLite matches index
# expressions syntactically, so no _id lookup or update ever uses the index and each
# one scans the whole collection (76 ms find / 224 ms update at 50k documents here).
# Both expressions mean the same JSON member, so we build with the index's spelling:
# the planner then uses the index and the cost is flat (about 1 ms at 50k).
# tests/integration/test_mongo_indexes.py measures it.
ferretdb_patch_id_lookup() {
  local file="$1/internal/backends/sqlite/metadata/metadata.go"
  grep -q "IDColumn = DefaultColumn + \"->'\$._id'\"" "$file" \
    || die "FerretDB $HITL_FERRETDB_VERSION: the _id path to patch is not in $file (new version? re-check the patch)"
  sed -i "s|IDColumn = DefaultColumn + \"->'\$._id'\"|IDColumn = DefaultColumn + \"->'_id'\"|" "$file"
  grep -q "IDColumn = DefaultColumn + \"->'_id'\"" "$file" || die "patching FerretDB's _id path failed"
}

# The PostgreSQL backend has the same flaw in another form: it filters `{_id: x}` with
# `_jsonb->'_id' @> x` (containment, so that an array field matches an element), which
# the unique btree index on `(_jsonb->'_id')` cannot serve, so every _id lookup scans
# (1.8 / 8.1 / 37 ms at 1k / 10k / 50k documents). An _id is never an array, so for a
# string or ObjectId _id equality means the same; we emit `_jsonb->'_id' = x`, with the
# path written out (not a parameter) so that the planner matches the index expression.
# FerretDB re-checks every pushed-down filter itself, so this only narrows what it reads.
ferretdb_patch_pg_id_lookup() {
  local file="$1/internal/backends/postgresql/query.go"
  local head='func filterEqual(p *metadata.Placeholder, k any, v any, operator string) (filter string, args []any) {'
  grep -qF "$head" "$file" \
    || die "FerretDB $HITL_FERRETDB_VERSION: filterEqual is not in $file (new version? re-check the patch)"
  awk -v head="$head" '{ print } $0 == head {
    print "\tif k == \"_id\" {"
    print "\t\tswitch v.(type) {"
    print "\t\tcase string, types.ObjectID:"
    print "\t\t\treturn metadata.IDColumn + \" = \" + p.Next(), []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}"
    print "\t\t}"
    print "\t}"
  }' "$file" >"$file.new" && mv "$file.new" "$file"
  grep -q 'return metadata.IDColumn + " = "' "$file" || die "patching FerretDB's PostgreSQL _id filter failed"
}

# FerretDB 1.24 opens up to 100 SQLite connections per database and lets concurrent
# writes meet in SQLite, where all but one get SQLITE_BUSY and wait in SQLite's busy
# handler, which sleeps in growing steps (1, 2, 5 ... 100 ms) instead of waking when
# the writer is done: with 16 concurrent writers (services under load) the p99 of a
# durable insert was 240-440 ms against 1 ms alone. And each of those small write
# transactions pays its own commit (a WAL fsync with synchronous=full).
# So the build (1) queues writers in FerretDB, a mutex per database around its write
# paths (reads go on in parallel, WAL), and (2) commits write transactions that wait
# for the writer together: one SQLite transaction, a SAVEPOINT per caller, one COMMIT
# (ferretdb_group_commit.go says exactly what each caller is told, and why an
# interrupted statement cannot leave writes outside the transaction). Used by the
# SQLite backend only (PostgreSQL has its own driver). `deploy/bench.sh --only store`
# prints 1 and 16 concurrent writers; tests/integration/test_store_group_commit.py.
ferretdb_patch_sqlite_group_commit() {
  local dir="$1/internal/util/fsql"
  local file="$dir/db.go"
  grep -q '^	BatchSize int$' "$file" \
    && grep -q '^func (db \*DB) InTransaction(ctx context.Context, f func(\*Tx) error) (err error) {$' "$file" \
    && grep -q '^func (db \*DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {$' "$file" \
    || die "FerretDB $HITL_FERRETDB_VERSION: fsql.DB is not as expected in $file (new version? re-check the patch)"
  awk '
    $0 == "\t\"log/slog\"" { print; print "\t\"sync\""; next }
    $0 == "\tBatchSize int" {
      print; print ""
      print "\t// hitl: one writer at a time, queued here instead of in SQLite'"'"'s busy handler,"
      print "\t// and write transactions that wait committed together (group_commit.go)."
      print "\twriteMu sync.Mutex"
      print "\tgroup   groupQueue"
      next
    }
    /^func \(db \*DB\) ExecContext\(/ { print; print "\tdb.writeMu.Lock()"; print "\tdefer db.writeMu.Unlock()"; print ""; next }
    /^func \(db \*DB\) InTransaction\(/ { sub(/InTransaction/, "inTransactionAlone"); print; next }
    { print }
  ' "$file" >"$file.new" && mv "$file.new" "$file"
  cp "$HITL_DEPLOY_DIR/lib/ferretdb_group_commit.go" "$dir/group_commit.go"
  # Deletes (by `_id`: outbox markers, leases) join the group too: DeleteAll ran its
  # DELETE in autocommit mode, one commit each.
  local coll="$1/internal/backends/sqlite/collection.go"
  [[ $(grep -c '^	res, err := db.ExecContext(ctx, q, args...)$' "$coll") == 1 ]] \
    && grep -q '^	ra, err := res.RowsAffected()$' "$coll" \
    || die "FerretDB $HITL_FERRETDB_VERSION: DeleteAll is not as expected in $coll (re-check the patch)"
  awk '
    skip > 0 { skip--; next }
    $0 == "\tres, err := db.ExecContext(ctx, q, args...)" {
      print "\tvar ra int64"
      print "\terr := db.InTransaction(ctx, func(tx *fsql.Tx) error {"
      print "\t\tres, err := tx.ExecContext(ctx, q, args...)"
      print "\t\tif err == nil {"
      print "\t\t\tra, err = res.RowsAffected()"
      print "\t\t}"
      print ""
      print "\t\treturn err"
      print "\t})"
      next
    }
    $0 == "\tra, err := res.RowsAffected()" { skip = 4; next }
    { print }
  ' "$coll" >"$coll.new" && mv "$coll.new" "$coll"
  grep -q '^	err := db.InTransaction(ctx, func(tx \*fsql.Tx) error {$' "$coll" \
    || die "patching FerretDB's SQLite DeleteAll failed"
  grep -q 'func (db \*DB) inTransactionAlone(' "$file" && grep -q 'db.writeMu.Lock()' "$file" \
    || die "patching FerretDB's SQLite write path failed"
}

# FerretDB 1.24 updates a document while the query that found it is still open: the
# update and findAndModify handlers read through an iterator over `pgx.Rows` (which
# holds its PostgreSQL connection until closed) and call `UpdateAll` (or `DeleteAll`,
# for findAndModify's remove) from inside that loop, which begins a transaction on a
# second connection of the same pool (`pool_max_conns`, 50). With 50 such operations
# at once, every connection is held by an open read whose goroutine waits for a second
# one, and FerretDB deadlocks for good: no timeout, later commands (even `ping`) queue
# behind it, and PostgreSQL shows 50 idle connections (what stalled the benchmark at
# 50 decisions/s; goroutine dump in README "FerretDB on PostgreSQL: the stall at
# 50/s"). Its delete handler already reads first and closes the read ("close read
# transaction before starting write transaction"); we do the same for update and
# findAndModify: read the matched documents (one unless multi), close the query, then
# write. The update itself was never atomic with the read (it is read-then-write with
# or without this), so nothing is lost; on SQLite it also ends the read before the write.
# tests/integration/test_ferretdb_concurrent_updates.py drives 120 concurrent updates.
ferretdb_patch_read_before_write() {
  local update="$1/internal/handler/common/update.go" fam="$1/internal/handler/msg_findandmodify.go"
  [[ $(grep -c '^	result := new(UpdateResult)$' "$update") == 1 ]] \
    && [[ $(grep -c '^		_, doc, err = iter.Next()$' "$fam") == 1 ]] \
    || die "FerretDB $HITL_FERRETDB_VERSION: UpdateDocument / findAndModify are not as expected (new version? re-check the patch)"
  awk '{ print } $0 == "\tresult := new(UpdateResult)" {
    print ""
    print "\t// hitl: read every matched document and close the query (and its pool connection)"
    print "\t// before writing, so no command holds two connections at once."
    print "\tmatched, err := iterator.ConsumeValues(iter)"
    print "\tif err != nil {"
    print "\t\treturn nil, lazyerrors.Error(err)"
    print "\t}"
    print ""
    print "\titer = iterator.Values(iterator.ForSlice(matched))"
    print "\tdefer iter.Close()"
  }' "$update" >"$update.new" && mv "$update.new" "$update"
  awk '{ print } $0 == "\t\t_, doc, err = iter.Next()" {
    print ""
    print "\t\t// hitl: close the query (and its pool connection) before the delete."
    print "\t\titer.Close()"
  }' "$fam" >"$fam.new" && mv "$fam.new" "$fam"
  grep -q 'matched, err := iterator.ConsumeValues(iter)' "$update" && grep -q 'hitl: close the query' "$fam" \
    || die "patching FerretDB's update / findAndModify read-before-write failed"
}

# FerretDB tracks the lifetime of its iterators, connections and cursors
# (internal/util/resource): every Track adds the object to a pprof profile, which
# records the caller's stack, and sets a finalizer that panics (stopping the server) if
# the object is collected untracked. A CPU profile under hitl's load put 12% of
# FerretDB's CPU there (runtime.callers under resource.Track). It is a leak detector
# for FerretDB's own tests; our build turns Track and Untrack into no-ops.
ferretdb_patch_resource_tracking() {
  local file="$1/internal/util/resource/resource.go"
  [[ $(grep -c '^func Track(obj any, token \*Token) {$' "$file") == 1 ]] \
    && [[ $(grep -c '^func Untrack(obj any, token \*Token) {$' "$file") == 1 ]] \
    || die "FerretDB $HITL_FERRETDB_VERSION: resource.Track / Untrack are not as expected (new version? re-check the patch)"
  awk '{ print } $0 == "func Track(obj any, token *Token) {" || $0 == "func Untrack(obj any, token *Token) {" {
    print "\t// hitl: no lifetime tracking (its stack capture was 12% of the CPU under load)."
    print "\tif !hitlTrackResources {"
    print "\t\treturn"
    print "\t}"
    print ""
  } END {
    print ""
    print "// hitl: see Track."
    print "const hitlTrackResources = false"
  }' "$file" >"$file.new" && mv "$file.new" "$file"
  [[ $(grep -c 'if !hitlTrackResources {' "$file") == 2 ]] \
    || die "patching FerretDB's resource tracking failed"
}

# FerretDB deletes by reading every document its filter's pushdown returns, decoding it
# (JSON), matching the filter again and then deleting the matches by `_id`. For a filter
# of `_id` alone, a string or an ObjectId (hitl's every delete: a listing row leaving,
# markers), that read returns the one document the delete removes anyway: a CPU profile
# under hitl's load put 10% of FerretDB's CPU in deletes, most of it decoding rows that
# were about to go. Our build deletes those by key straight away (the count is SQLite's
# or PostgreSQL's rows affected, as on the usual path's last step); any other filter
# takes the usual path. tests/integration/test_store_deletes.py checks the answers.
ferretdb_patch_delete_by_id() {
  local file="$1/internal/handler/msg_delete.go"
  local head='func (h *Handler) execDelete(ctx context.Context, c backends.Collection, p *common.Delete) (int32, error) {'
  [[ $(grep -cF "$head" "$file") == 1 ]] \
    || die "FerretDB $HITL_FERRETDB_VERSION: execDelete is not as expected in $file (new version? re-check the patch)"
  awk -v head="$head" '{ print } $0 == head {
    print "\t// hitl: a filter of `_id` alone (a string or an ObjectId) deletes by key, unread."
    print "\tif p.Filter != nil && p.Filter.Len() == 1 {"
    print "\t\tif id, idErr := p.Filter.Get(\"_id\"); idErr == nil {"
    print "\t\t\tswitch id.(type) {"
    print "\t\t\tcase string, types.ObjectID:"
    print "\t\t\t\tres, delErr := c.DeleteAll(ctx, &backends.DeleteAllParams{IDs: []any{id}})"
    print "\t\t\t\tif delErr != nil {"
    print "\t\t\t\t\treturn 0, lazyerrors.Error(delErr)"
    print "\t\t\t\t}"
    print ""
    print "\t\t\t\treturn res.Deleted, nil"
    print "\t\t\t}"
    print "\t\t}"
    print "\t}"
    print ""
  }' "$file" >"$file.new" && mv "$file.new" "$file"
  grep -q 'hitl: a filter of `_id` alone' "$file" || die "patching FerretDB's delete by _id failed"
}

# FerretDB replaces a document the same way it updates one: it reads every document the
# filter's pushdown returns, decodes it (JSON), compares it with the replacement, and
# then writes the replacement by `_id`. For a replacement (no `$` operators) of one
# document named by `_id` alone, a string or an ObjectId (hitl's projections: the
# agent's `runs` row, written where a run pauses or ends; the approval service's
# re-projected listing rows; markers), the old document is not needed: our build writes the replacement by key straight away
# (`UPDATE ... WHERE _id = ?`, the usual path's last step), and inserts it when nothing
# was there and the caller asked for an upsert (two first upserts at once: one gets a
# duplicate key error, as on the usual path, which also reads before it writes). The
# one answer that differs: a replacement identical to the stored document, `_id`
# included, counts as modified (`nModified` 1; MongoDB and the usual path say 0, and the
# usual path says 1 too when the replacement leaves `_id` out, as PyMongo sends it,
# since it compares the documents whole). A replacement whose `_id` is not the filter's
# own value (another value, another type, an array), or that fails validation, takes
# the usual path, which reports it. Any other update does. Like the delete by key, it
# matches the stored `_id` by its JSON text, so a string filter of 24 hex digits would
# also reach a stored ObjectId of those digits (hitl's `_id`s are all strings).
# tests/integration/test_store_replaces.py checks the answers.
ferretdb_patch_replace_by_id() {
  local file="$1/internal/handler/msg_update.go"
  local anchor='		var qp backends.QueryParams'
  [[ $(grep -cxF "$anchor" "$file") == 1 ]] && [[ $(grep -c '^func (h \*Handler) updateDocument(' "$file") == 1 ]] \
    || die "FerretDB $HITL_FERRETDB_VERSION: updateDocument is not as expected in $file (new version? re-check the patch)"
  awk -v anchor="$anchor" '$0 == anchor {
    print "\t\t// hitl: a replacement of the one document named by `_id` alone is written by key, unread."
    print "\t\tif done, rm, rmod, rid, rErr := hitlReplaceByID(ctx, c, &u); rErr != nil {"
    print "\t\t\treturn 0, 0, nil, lazyerrors.Error(rErr)"
    print "\t\t} else if done {"
    print "\t\t\tmatched += rm"
    print "\t\t\tmodified += rmod"
    print ""
    print "\t\t\tif rid != nil {"
    print "\t\t\t\tupserted.Append(must.NotFail(types.NewDocument(\"index\", int32(upserted.Len()), \"_id\", rid)))"
    print "\t\t\t\tmatched++"
    print "\t\t\t}"
    print ""
    print "\t\t\tcontinue"
    print "\t\t}"
    print ""
  } { print } END {
    print ""
    print "// hitlReplaceByID writes a replacement of the document whose `_id` (a string or an"
    print "// ObjectID) alone the filter names without reading it first. done is false when the"
    print "// update is of another kind (the usual path handles it); rid is the upserted `_id`."
    print "func hitlReplaceByID(ctx context.Context, c backends.Collection, u *common.Update) (done bool, rm, rmod int32, rid any, err error) {"
    print "\tif u.HasUpdateOperators || u.Multi || u.Update == nil || u.Filter == nil || u.Filter.Len() != 1 {"
    print "\t\treturn false, 0, 0, nil, nil"
    print "\t}"
    print ""
    print "\tid, idErr := u.Filter.Get(\"_id\")"
    print "\tif idErr != nil {"
    print "\t\treturn false, 0, 0, nil, nil"
    print "\t}"
    print ""
    print "\tswitch id.(type) {"
    print "\tcase string, types.ObjectID:"
    print "\tdefault:"
    print "\t\treturn false, 0, 0, nil, nil"
    print "\t}"
    print ""
    print "\t// Compared as values, not with types.Compare (which takes an array holding the value as equal)."
    print "\tif newID, newErr := u.Update.Get(\"_id\"); newErr == nil && newID != id {"
    print "\t\treturn false, 0, 0, nil, nil // the usual path reports the immutable _id"
    print "\t}"
    print ""
    print "\tdoc := must.NotFail(types.NewDocument(\"_id\", id))"
    print "\tfor _, key := range u.Update.Keys() {"
    print "\t\tif key != \"_id\" {"
    print "\t\t\tdoc.Set(key, must.NotFail(u.Update.Get(key)))"
    print "\t\t}"
    print "\t}"
    print ""
    print "\tif doc.ValidateData() != nil {"
    print "\t\treturn false, 0, 0, nil, nil // the usual path reports it"
    print "\t}"
    print ""
    print "\tres, err := c.UpdateAll(ctx, &backends.UpdateAllParams{Docs: []*types.Document{doc}})"
    print "\tif err != nil {"
    print "\t\treturn true, 0, 0, nil, lazyerrors.Error(err)"
    print "\t}"
    print ""
    print "\tif res.Updated > 0 {"
    print "\t\treturn true, 1, 1, nil, nil"
    print "\t}"
    print ""
    print "\tif !u.Upsert {"
    print "\t\treturn true, 0, 0, nil, nil"
    print "\t}"
    print ""
    print "\tif _, err = c.InsertAll(ctx, &backends.InsertAllParams{Docs: []*types.Document{doc}}); err != nil {"
    print "\t\treturn true, 0, 0, nil, lazyerrors.Error(err)"
    print "\t}"
    print ""
    print "\treturn true, 0, 0, id, nil"
    print "}"
  }' "$file" >"$file.new" && mv "$file.new" "$file"
  grep -q 'hitl: a replacement of the one document named by `_id` alone' "$file" \
    && grep -q '^func hitlReplaceByID(' "$file" || die "patching FerretDB's replace by _id failed"
}

# --- lifecycle -----------------------------------------------------------------

ferretdb_pid() { find_pid "$FERRETDB_PIDFILE" ferretdb "$FERRETDB_MARKER"; }

# Readiness = a real MongoDB `ping` over the wire protocol (stdlib python),
# falling back to FerretDB's own `ping` subcommand where python3 is missing.
ferretdb_probe() {
  if command -v python3 >/dev/null 2>&1; then
    python3 "$HITL_DEPLOY_DIR/mongo_ping.py" --quiet --timeout 2 "$HITL_HOST:$HITL_MONGO_PORT"
  else
    "$FERRETDB_BIN" ping --listen-addr="$HITL_HOST:$HITL_MONGO_PORT" >/dev/null 2>&1
  fi
}

ferretdb_launch() {
  local pid
  if pid=$(ferretdb_pid); then
    return 0
  fi
  if pid=$(find_pid "$FERRETDB_PIDFILE" ferretdb "$FERRETDB_OTHER_MARKER"); then
    die "a FerretDB on the other backend runs in $FERRETDB_STATE (pid $pid): stop it first (infra.sh stop with that HITL_STORE_BACKEND)"
  fi
  require_port_free ferretdb "$HITL_MONGO_PORT"
  ferretdb_install
  local backend_args
  if [[ $HITL_STORE_BACKEND == postgresql ]]; then
    postgres_start
    mkdir -p "$FERRETDB_STATE/state-postgresql"
    # The URL (with the password) goes through the environment, not argv, so `ps`
    # does not show it to other local users.
    export FERRETDB_POSTGRESQL_URL="postgres://hitl:$(<"$POSTGRES_PASSWORD_FILE")@$HITL_HOST:$HITL_POSTGRES_PORT/ferretdb"
    backend_args=(--handler=postgresql "$FERRETDB_PG_ARG")
  else
    mkdir -p "$FERRETDB_DATA" "$FERRETDB_STATE/state"
    backend_args=(--handler=sqlite "$FERRETDB_SQLITE_ARG" "$FERRETDB_SQLITE_MARKER")
  fi
  log "starting FerretDB $HITL_FERRETDB_VERSION ($HITL_STORE_BACKEND) on $HITL_HOST:$HITL_MONGO_PORT"
  # --debug-addr=- (default): no metrics/pprof listener (it would take port 8088);
  # HITL_FERRETDB_DEBUG_ADDR=127.0.0.1:PORT turns it on, for goroutine dumps of a stall.
  # --telemetry=disable : no beacon calls (and no network here anyway).
  start_detached "$FERRETDB_LOG" "$FERRETDB_PIDFILE" \
    env GOGC="$HITL_FERRETDB_GOGC" GOMEMLIMIT="$HITL_FERRETDB_GOMEMLIMIT" \
      GOMAXPROCS="$HITL_FERRETDB_GOMAXPROCS" "$FERRETDB_BIN" \
      "${backend_args[@]}" \
      --listen-addr="$HITL_HOST:$HITL_MONGO_PORT" \
      --debug-addr="$HITL_FERRETDB_DEBUG_ADDR" \
      --telemetry=disable \
      --log-level="$HITL_FERRETDB_LOG_LEVEL"
  unset FERRETDB_POSTGRESQL_URL
}

ferretdb_wait() {
  local pid
  pid=$(ferretdb_pid) || { show_logs "$FERRETDB_LOG"; die "ferretdb is not running (log above)"; }
  # A ping is cheap, so even the "already running" case is proven with one.
  if port_open "$HITL_MONGO_PORT" && ferretdb_probe 2; then
    log "ferretdb running and answering ping on $HITL_HOST:$HITL_MONGO_PORT (pid $pid)"
    return 0
  fi
  wait_ready ferretdb "$pid" "$HITL_MONGO_PORT" ferretdb_probe "$FERRETDB_LOG"
}

ferretdb_start() {
  ferretdb_launch
  ferretdb_wait
}

ferretdb_stop() {
  local pid
  if pid=$(ferretdb_pid); then
    stop_pid ferretdb "$pid" "$FERRETDB_PIDFILE"
  else
    rm -f "$FERRETDB_PIDFILE"
    log "ferretdb not running"
  fi
  [[ $HITL_STORE_BACKEND == postgresql ]] && postgres_stop
  return 0
}

ferretdb_status() {
  local pid
  if pid=$(ferretdb_pid); then
    if port_open "$HITL_MONGO_PORT"; then
      local where="sqlite $FERRETDB_DATA"
      [[ $HITL_STORE_BACKEND == postgresql ]] && where="postgresql $HITL_HOST:$HITL_POSTGRES_PORT"
      echo "ferretdb  running   pid $pid  $HITL_HOST:$HITL_MONGO_PORT  version $HITL_FERRETDB_VERSION ($where)  log $FERRETDB_LOG"
      return 0
    fi
    echo "ferretdb  starting  pid $pid  $HITL_HOST:$HITL_MONGO_PORT not accepting connections yet  log $FERRETDB_LOG"
    return 1
  fi
  echo "ferretdb  stopped   $HITL_HOST:$HITL_MONGO_PORT"
  return 1
}

ferretdb_wipe() {
  rm -rf "$FERRETDB_DATA" "$FERRETDB_STATE/state" "$FERRETDB_STATE/state-postgresql"
  postgres_wipe
}
