package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// librdkafkaTxnScript is a transactional producer in librdkafka (through
// confluent-kafka-python), a client nobody here wrote: it commits the
// registrations of two customers, aborts a rename of the first, then commits
// another rename of it. Java's partitioner (murmur2), as the shop expects.
const librdkafkaTxnScript = `
import json, sys, uuid
from confluent_kafka import Producer

p = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": "librdkafka-txn-test",
              "partitioner": "murmur2_random", "enable.idempotence": True})
p.init_transactions(30)

def event(typ, subject, data):
    return json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "urn:librdkafka",
                       "type": typ, "subject": subject, "data": data})

def txn(records, commit):
    p.begin_transaction()
    for key, value in records:
        p.produce("customer-events", key=key, value=value)
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)

txn([("tx-a", event("CustomerRegistered", "tx-a", {"name": "A", "email": "a@example.com"})),
     ("tx-b", event("CustomerRegistered", "tx-b", {"name": "B", "email": "b@example.com"}))], True)
txn([("tx-a", event("CustomerUpdated", "tx-a", {"name": "Aborted"}))], False)
txn([("tx-a", event("CustomerUpdated", "tx-a", {"name": "A2"}))], True)
print("done")
`

func TestCustomers_GivenALibrdkafkaTransactionalProducerThatAborts_ThenOnlyItsCommittedEventsAreServed(t *testing.T) {
	librdkafkaNeeded(t)
	s := startShop(t, testConfig(t.TempDir()))

	librdkafka(t, librdkafkaTxnScript, strings.Join(s.brokers(), ","))

	// The rename committed after the aborted one is version 2: had the
	// aborted rename been applied, it would be version 2 (named "Aborted")
	// and the committed one version 3.
	a := s.awaitVersion("tx-a", 2)
	assert.Equal(t, "A2", a.Name, "the aborted rename was applied")
	b := s.awaitVersion("tx-b", 1)
	assert.Equal(t, "B", b.Name)
}

// librdkafkaReadScript reads a topic from its start to its end as a
// librdkafka consumer does by default (read committed) and prints each
// record as "key id" — a client nobody here wrote, reading what the outbox
// relays publish in Kafka transactions.
const librdkafkaReadScript = `
import json, sys
from confluent_kafka import Consumer, TopicPartition, KafkaError

c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "librdkafka-read-test",
              "enable.partition.eof": True, "auto.offset.reset": "earliest", "enable.auto.commit": False})
meta = c.list_topics(sys.argv[2], timeout=30)
parts = list(meta.topics[sys.argv[2]].partitions)
c.assign([TopicPartition(sys.argv[2], p, 0) for p in parts])
ended = set()
while len(ended) < len(parts):
    m = c.poll(30)
    if m is None:
        sys.exit("no record or end of partition within 30 s")
    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            ended.add(m.partition())
            continue
        sys.exit(str(m.error()))
    print(m.key().decode(), json.loads(m.value())["id"])
c.close()
`

// librdkafkaRead runs librdkafkaReadScript on topic; it skips t without
// Debian's python3-confluent-kafka (.ci/run installs it).
func librdkafkaRead(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	librdkafkaNeeded(t)
	out := librdkafka(t, librdkafkaReadScript, strings.Join(brokers, ","), topic)
	return strings.Split(strings.TrimSpace(out), "\n")
}

// librdkafkaNeeded skips t without Debian's python3-confluent-kafka
// (.ci/run installs it). Call it before starting what the script needs.
func librdkafkaNeeded(t *testing.T) {
	t.Helper()
	if exec.Command("/usr/bin/python3", "-c", "import confluent_kafka").Run() != nil {
		t.Skip("needs Debian's python3-confluent-kafka (librdkafka); .ci/run installs it")
	}
}

// librdkafka runs a Python script of confluent-kafka (librdkafka) with
// args and returns what it printed; it fails t if the script does.
func librdkafka(t *testing.T, script string, args ...string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", append([]string{"-c", script}, args...)...).CombinedOutput()
	require.NoError(t, err, "librdkafka script: %s", out)
	return string(out)
}
