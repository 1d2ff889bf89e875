#!/usr/bin/env bash
# A local Apache Flink session cluster for 'peloton replay --runner FlinkRunner' (issue 27): one JobManager and
# two TaskManagers, each its own JVM, from Flink's published artifacts; and Beam's Flink job server beside it.
#
#   scripts/flink.sh setup             fetch everything once into the cache (idempotent; the only step that
#                                      downloads): Flink 1.19.0 (PyPI apache-flink-libraries) and Beam's
#                                      Flink 1.19 runner with its dependencies (Maven Central)
#   scripts/flink.sh start [PORT [RPC]] start the cluster (web UI and REST on PORT, default 8081; JobManager RPC
#                                      on RPC, default 6123) unless one answers there; waits for 2 task slots
#   scripts/flink.sh stop              stop the cluster this script started
#   scripts/flink.sh status            the cluster's overview (REST /overview), exit 1 when it does not answer
#   scripts/flink.sh jar               print the job server jar (for --flink_job_server_jar)
#
# Cache: $PELOTON_FLINK_CACHE (default ~/.cache/peloton/flink). State (config, pids, logs):
# $PELOTON_FLINK_STATE (default .flink in the project). Memory: JobManager 1 GiB, TaskManagers 1.5 GiB each.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

FLINK_VERSION=1.19.0   # the Flink of Beam's beam-runners-flink-1.19 runner below (its flink-clients)
BEAM_JAVA_VERSION=2.62.0  # the newest beam-runners-flink-1.19 whose dependencies Maven Central serves whole here
CACHE=${PELOTON_FLINK_CACHE:-$HOME/.cache/peloton/flink}
STATE=${PELOTON_FLINK_STATE:-.flink}
FLINK_HOME=$CACHE/flink-$FLINK_VERSION
JOBSERVER_DIR=$CACHE/beam-flink-1.19-job-server-$BEAM_JAVA_VERSION
JOBSERVER_JAR=$JOBSERVER_DIR/beam-runners-flink-1.19-job-server-$BEAM_JAVA_VERSION.jar
JAVA=${JAVA:-java}
PYTHON=${PYTHON:-python3}
VENV=${PELOTON_VENV:-.venv}
PORT=${2:-${FLINK_REST_PORT:-8081}}
RPC_PORT=${3:-${FLINK_RPC_PORT:-6123}}

# Java 17: the module openings Flink's own config.yaml sets (env.java.opts.all)
JAVA17_OPENS="--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED \
--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED \
--add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
--add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
--add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED \
--add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED \
--add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED \
--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED"

say() { echo "flink: $*" >&2; }

ready() { [ -f "$CACHE/.ready-$FLINK_VERSION-$BEAM_JAVA_VERSION" ] && [ -f "$JOBSERVER_JAR" ]; }

setup() {
  if ready; then return; fi
  command -v "$JAVA" >/dev/null || { say "java not found (Flink $FLINK_VERSION needs Java 11 or 17)"; exit 1; }
  command -v mvn >/dev/null || { say "mvn not found: Maven fetches Beam's Flink runner from Maven Central"; exit 1; }
  mkdir -p "$CACHE"
  local tmp
  tmp=$(mktemp -d "$CACHE/.setup-XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  if [ ! -f "$FLINK_HOME/lib/flink-dist-$FLINK_VERSION.jar" ]; then
    say "fetching Flink $FLINK_VERSION (PyPI apache-flink-libraries, ~230 MB) into $FLINK_HOME"
    local pip="$VENV/bin/pip"
    [ -x "$pip" ] || pip="$PYTHON -m pip"
    $pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      "apache-flink-libraries==$FLINK_VERSION" -d "$tmp/pypi"
    tar xzf --no-same-owner "$tmp"/pypi/apache-flink-libraries-"$FLINK_VERSION".tar.gz -C "$tmp" \
      "apache-flink-libraries-$FLINK_VERSION/deps/lib" "apache-flink-libraries-$FLINK_VERSION/deps/bin" \
      "apache-flink-libraries-$FLINK_VERSION/deps/plugins"
    rm -rf "$FLINK_HOME"
    mv "$tmp/apache-flink-libraries-$FLINK_VERSION/deps" "$FLINK_HOME"
    rm -rf "$tmp/pypi"
  fi
  if [ ! -f "$JOBSERVER_JAR" ]; then
    say "fetching Beam's Flink 1.19 job server $BEAM_JAVA_VERSION and its dependencies (Maven Central, ~150 MB)"
    mvn -q -B -f scripts/flink-job-server.pom.xml dependency:copy-dependencies -Dbeam.version="$BEAM_JAVA_VERSION" \
      -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1 || { cat "$tmp/mvn.log" >&2; exit 1; }
    rm -rf "$JOBSERVER_DIR"
    mkdir -p "$JOBSERVER_DIR"
    mv "$tmp/lib" "$JOBSERVER_DIR/lib"
    # an executable jar naming its dependencies (manifest Class-Path), with the Java 17 openings Flink needs
    "$PYTHON" - "$JOBSERVER_JAR" "$JOBSERVER_DIR/lib" <<'EOF'
import os, sys, zipfile

jar, lib = sys.argv[1], sys.argv[2]
jars = sorted(f"lib/{name}" for name in os.listdir(lib) if name.endswith(".jar"))
opens = ["java.base/java.lang", "java.base/java.net", "java.base/java.io", "java.base/java.nio",
         "java.base/sun.nio.ch", "java.base/java.lang.reflect", "java.base/java.text", "java.base/java.time",
         "java.base/java.util", "java.base/java.util.concurrent", "java.base/java.util.concurrent.atomic",
         "java.base/java.util.concurrent.locks"]
exports = ["java.base/sun.net.util", "java.rmi/sun.rmi.registry", "java.security.jgss/sun.security.krb5"]

def header(name, value):  # manifest lines are at most 72 bytes; continuation lines start with a space
    line, out = f"{name}: {value}".encode(), []
    out.append(line[:72])
    line = line[72:]
    while line:
        out.append(b" " + line[:71])
        line = line[71:]
    return b"\r\n".join(out) + b"\r\n"

manifest = (header("Manifest-Version", "1.0") + header("Created-By", "peloton scripts/flink.sh")
            + header("Main-Class", "org.apache.beam.runners.flink.FlinkJobServerDriver")
            + header("Class-Path", " ".join(jars)) + header("Add-Opens", " ".join(opens))
            + header("Add-Exports", " ".join(exports)) + b"\r\n")
with zipfile.ZipFile(jar + ".tmp", "w") as z:
    z.writestr("META-INF/MANIFEST.MF", manifest)
os.replace(jar + ".tmp", jar)
EOF
  fi
  touch "$CACHE/.ready-$FLINK_VERSION-$BEAM_JAVA_VERSION"
  say "cached in $CACHE ($(du -sh "$CACHE" | cut -f1)); job server jar: $JOBSERVER_JAR"
}

answers() { curl -sf -m 2 "http://localhost:$PORT/overview" 2>/dev/null; }

free_slots() { answers | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin).get("slots-total", 0))' 2>/dev/null || echo 0; }

classpath() {  # as Flink's config.sh: every jar of lib/, flink-dist last
  local cp="" jar
  for jar in "$FLINK_HOME"/lib/*.jar; do
    case "$jar" in */flink-dist*) ;; *) cp="$cp:$jar" ;; esac
  done
  echo "${cp#:}:$FLINK_HOME/lib/flink-dist-$FLINK_VERSION.jar"
}

write_config() {
  mkdir -p "$STATE/conf" "$STATE/log" "$STATE/tmp"
  cat > "$STATE/conf/config.yaml" <<EOF
# written by scripts/flink.sh start
jobmanager:
  bind-host: localhost
  rpc: {address: localhost, port: $RPC_PORT}
  memory: {process: {size: 1024m}}
  execution: {failover-strategy: region}
taskmanager:
  bind-host: localhost
  host: localhost
  numberOfTaskSlots: 1
  memory:
    process: {size: 1536m}
    managed: {fraction: 0.2}
    # a Beam batch job runs all its operators in each slot at once: network buffers for every gate of them
    network: {min: 256mb, max: 256mb}
  # ... and each blocking (sort-shuffle) result partition would hold 512 of them
  network: {sort-shuffle: {min-buffers: 64}}
  # a GroupByKey of one key (the whole stage) pre-combines into records larger than a sort buffer: spill them
  # (what counts is the job server's setting, pipelines/flink.py CLIENT_CONFIG; this one for other clients)
  runtime: {large-record-handler: true}
rest: {address: localhost, bind-address: localhost, port: $PORT}
# a TaskManager that dies is noticed within seconds (default 50 s), so a live job restarts from its checkpoint
heartbeat: {interval: 2000, timeout: 10000}
# RPC answers within 60 s, not Flink's 10 s: on a loaded 2-core machine a TaskManager took longer to accept a
# task and the job failed ("not responding after a rpcTimeout of 10000 ms"; BENCHMARKS.md, "Scale (issue 27)")
pekko: {ask: {timeout: 60 s}}
parallelism: {default: 2}
io: {tmp: {dirs: $STATE/tmp}}
blob: {server: {port: "0"}}
EOF
  cat > "$STATE/conf/log4j.properties" <<'EOF'
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.append = false
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
EOF
}

resource_params() {  # JVM flags and dynamic properties of a process, computed by Flink itself (as config.sh does)
  "$JAVA" -classpath "$FLINK_HOME/bin/bash-java-utils.jar:$FLINK_HOME/lib/flink-dist-$FLINK_VERSION.jar" \
    org.apache.flink.runtime.util.bash.BashJavaUtils "$1" --configDir "$STATE/conf" 2>&1 \
    | sed -n 's/^BASH_JAVA_UTILS_EXEC_RESULT://p'
}

launch() {  # NAME CLASS: one JVM in its own process group, its pid in STATE
  local name=$1 class=$2 kind=$3 params jvm dyn
  params=$(resource_params "$kind")
  jvm=$(sed -n 1p <<<"$params")
  dyn=$(sed -n 2p <<<"$params")
  [ -n "$jvm" ] || { say "Flink could not size the $name's memory: $(resource_params "$kind" 2>&1 | tail -3)"; exit 1; }
  # shellcheck disable=SC2086 - word splitting of the flag lists is intended
  FLINK_CONF_DIR="$STATE/conf" FLINK_LIB_DIR="$FLINK_HOME/lib" FLINK_PLUGINS_DIR="$FLINK_HOME/plugins" \
    setsid "$JAVA" $jvm $JAVA17_OPENS -Dlog.file="$STATE/log/$name.log" \
    -Dlog4j.configurationFile="file:$STATE/conf/log4j.properties" -classpath "$(classpath)" \
    "$class" --configDir "$STATE/conf" $dyn >"$STATE/log/$name.out" 2>&1 </dev/null &
  echo $! > "$STATE/$name.pid"
}

start() {
  if answers >/dev/null; then say "a cluster already answers on localhost:$PORT"; return; fi
  ready || setup
  [[ "$STATE" = /* ]] || STATE=$ROOT/$STATE
  write_config
  launch jobmanager org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint GET_JM_RESOURCE_PARAMS
  launch taskmanager-1 org.apache.flink.runtime.taskexecutor.TaskManagerRunner GET_TM_RESOURCE_PARAMS
  launch taskmanager-2 org.apache.flink.runtime.taskexecutor.TaskManagerRunner GET_TM_RESOURCE_PARAMS
  for _ in $(seq 1 120); do
    if [ "$(free_slots)" -ge 2 ]; then
      say "session cluster up: web UI http://localhost:$PORT (JobManager and 2 TaskManagers; logs in $STATE/log)"
      return
    fi
    for p in "$STATE"/*.pid; do
      kill -0 "$(cat "$p")" 2>/dev/null || { say "$(basename "$p" .pid) died; log: $STATE/log"; \
        tail -5 "$STATE/log/$(basename "$p" .pid).out" >&2 || true; stop; exit 1; }
    done
    sleep 0.5
  done
  say "no 2 task slots on localhost:$PORT after 60 s; logs in $STATE/log"
  stop
  exit 1
}

stop() {
  local p
  for p in "$STATE"/taskmanager-*.pid "$STATE"/jobmanager.pid; do
    [ -f "$p" ] || continue
    kill -- -"$(cat "$p")" 2>/dev/null || true
  done
  for p in "$STATE"/taskmanager-*.pid "$STATE"/jobmanager.pid; do
    [ -f "$p" ] || continue
    for _ in $(seq 1 40); do kill -0 "$(cat "$p")" 2>/dev/null || break; sleep 0.25; done
    kill -9 -- -"$(cat "$p")" 2>/dev/null || true
    rm -f "$p"
  done
}

case "${1:-}" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  status)
    answers || { say "no cluster answers on localhost:$PORT"; exit 1; }
    echo
    ;;
  jar)
    ready || { say "not set up: run ./run_local.sh flink setup"; exit 1; }
    echo "$JOBSERVER_JAR"
    ;;
  *)
    echo "usage: $0 setup | start [PORT [RPC_PORT]] | stop | status [PORT] | jar" >&2
    exit 2
    ;;
esac
