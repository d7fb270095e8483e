package streamfold

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/streamfold/streamfold/internal/membership"
)

// Member is one instance of the application in a processor group, as it
// advertised itself in its consumer-group member metadata (sarama's
// Consumer.Group.Member.UserData).
type Member struct {
	// Instance identifies one run of a Runtime; it is new at every Open.
	Instance string `json:"instance"`
	// Query is the host:port of the instance's query API; empty when it
	// serves no queries.
	Query string `json:"query,omitempty"`
}

// memberData is the user data every member of our groups sends: versioned,
// so that a later format can be told apart.
type memberData struct {
	V int `json:"v"`
	Member
}

func encodeMember(m Member) []byte {
	b, _ := json.Marshal(memberData{V: 1, Member: m})
	return b
}

// decodeMember reads a member's user data; a member that is not one of ours
// (another client in the group) is a Member with no instance.
func decodeMember(b []byte) Member {
	var d memberData
	if json.Unmarshal(b, &d) != nil || d.V != 1 {
		return Member{}
	}
	return d.Member
}

func newInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// GroupState is what the group coordinator last said about a group: its
// state and, once stable, which member owns which partition.
type GroupState struct {
	Group string `json:"group"`
	// State is Kafka's group state: Stable, PreparingRebalance,
	// CompletingRebalance, Empty, Dead.
	State   string           `json:"state"`
	Members []Member         `json:"members"`
	Owners  map[int32]Member `json:"owners"`
	// Err is why the last describe of this group failed; empty when it did not.
	Err string `json:"error,omitempty"`
}

func groupState(g membership.Group[Member]) GroupState {
	return GroupState{Group: g.Name, State: g.State, Members: g.Members, Owners: g.Owners, Err: g.Err}
}
