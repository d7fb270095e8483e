package outbox

// PollSetHooks makes r call beforePublish with the rows it is about to send
// and afterAck with those the broker acknowledged, before deleting them (nil:
// no call), so tests can stop it at these moments.
func PollSetHooks(r *PollingRelay, beforePublish, afterAck func([]Row)) {
	r.hooks = pollHooks{beforePublish: beforePublish, afterAck: afterAck}
}
