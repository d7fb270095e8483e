package tables

import "github.com/streamfold/streamfold/codecs"

// IndexOf is an Index whose terms come from the decoded value: terms gets
// the value as c decodes it, so an index is written against the table's type
// rather than its bytes. A value c cannot decode is indexed under no term.
//
//	byState := tables.IndexOf("state", codecs.JSON[Customer]{}, func(_ string, c Customer) []string {
//		return []string{c.State}
//	})
func IndexOf[V any](name string, c codecs.Codec[V], terms func(key string, v V) []string) Index {
	return Index{Name: name, Terms: func(key string, value []byte) []string {
		v, err := c.Decode(value)
		if err != nil {
			return nil
		}
		return terms(key, v)
	}}
}
