//go:build !linux

package netns

import "errors"

func setns(int) error { return errors.New("network namespaces exist only on Linux") }
