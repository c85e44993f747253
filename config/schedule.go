package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser reads five-field specs and descriptors (@hourly, @every 10m).
// The same parser validates the config and runs the daemon, so a spec that
// passes `config check` is the spec that runs.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron spec read in loc. TZ= and CRON_TZ= prefixes
// are refused: robfig/cron can panic on them, and the zone has its own key.
func ParseSchedule(spec string, loc *time.Location) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("must be a cron spec such as \"*/5 * * * *\", got \"\"")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("must not name a zone (use schedule.timezone), got %q", spec)
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %v", spec, err)
	}
	if loc != nil {
		if s, ok := sched.(*cron.SpecSchedule); ok {
			s.Location = loc
		}
	}
	return sched, nil
}

// Location is the zone of the cron specs. It panics on a zone that does
// not load; Validate has refused such a config.
func (s Schedule) Location() *time.Location {
	loc, err := loadLocation(s.Timezone)
	if err != nil {
		panic(fmt.Sprintf("config: schedule.timezone %q: %v (the config was not validated)", s.Timezone, err))
	}
	return loc
}
