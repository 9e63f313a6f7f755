#!/bin/bash
# Configure and start a single-node KRaft broker the way the apache/kafka image does:
# every KAFKA_<NAME> variable sets the property <name>, lower-cased, with `_` -> `.`,
# `__` -> `-` and `___` -> `_` (KAFKA_NODE_ID -> node.id; Confluent's images agree). Defaults give a working
# broker on :9092 with no variables at all. The storage is formatted on first start
# with CLUSTER_ID (apache/kafka's default id unless set).
set -euo pipefail
config=/opt/kafka/config/server.properties
declare -A props=(
  [node.id]=1
  [process.roles]=broker,controller
  [controller.quorum.voters]=1@localhost:9093
  [listeners]=PLAINTEXT://:9092,CONTROLLER://:9093
  [advertised.listeners]=PLAINTEXT://localhost:9092
  [controller.listener.names]=CONTROLLER
  [listener.security.protocol.map]=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
  [log.dirs]=/var/lib/kafka/data
  [num.partitions]=1
  [offsets.topic.replication.factor]=1
  [transaction.state.log.replication.factor]=1
  [transaction.state.log.min.isr]=1
  [group.initial.rebalance.delay.ms]=0
)
# JVM and script settings share the prefix but are not broker properties.
skip='^KAFKA_(HEAP_OPTS|JVM_PERFORMANCE_OPTS|OPTS|LOG4J_OPTS|GC_LOG_OPTS|JMX_OPTS|DEBUG)$'
while IFS='=' read -r name value; do
  [[ $name =~ ^KAFKA_ && ! $name =~ $skip ]] || continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/$'\x01'}
  key=${key//__/-}
  key=${key//_/.}
  key=${key//$'\x01'/_}
  props[$key]=$value
done < <(env)
{
  echo "# Written by start-kafka.sh from the KAFKA_* environment on each start."
  for key in "${!props[@]}"; do echo "$key=${props[$key]}"; done
} >"$config"

classpath='/opt/kafka/libs/*'
if [[ ! -f ${props[log.dirs]%%,*}/meta.properties ]]; then
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties \
    -cp "$classpath" kafka.tools.StorageTool format --ignore-formatted \
    -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$config"
fi
# shellcheck disable=SC2086  # the options are word lists, as in Kafka's own scripts
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} \
  ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true} \
  ${KAFKA_OPTS:-} \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  -cp "$classpath" kafka.Kafka "$config"
