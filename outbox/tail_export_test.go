package outbox

// TailSetAfterAck makes r call f after each acknowledgement by the broker
// and before it confirms the position to PostgreSQL: the crash test blocks
// there, to be killed between the two.
func TailSetAfterAck(r *LogRelay, f func(acked int)) { r.afterAck = f }
