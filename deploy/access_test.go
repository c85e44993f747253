package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The pods and the systemd unit start as shipped: their user reads the Secret's files, the
// configuration and the credentials, and writes its spool, with the modes and owners the
// manifests and the unit give them. Each is modelled in a directory (what the kubelet or
// systemd would create, as they would create it), and the real binary's `config check` runs
// there as the service's user, followed by a write to the spool directory it reports.
func TestServiceUserReadsItsFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates files owned by other users and runs the archiver as them")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed: cannot run the archiver as the service's user")
	}
	if testing.Short() {
		t.Skip("builds the archiver")
	}
	bin := buildArchiver(t)
	for path, objs := range kubeDocs(t) {
		for _, d := range objs {
			switch d.Kind {
			case "Deployment", "StatefulSet", "CronJob":
				t.Run(path, func(t *testing.T) { checkPodAccess(t, setpriv, bin, d) })
			}
		}
	}
	t.Run("systemd", func(t *testing.T) { checkUnitAccess(t, setpriv, bin) })
}

// buildArchiver builds cekat-archiver into a directory every user may enter.
func buildArchiver(t *testing.T) string {
	t.Helper()
	dir := worldDir(t)
	bin := filepath.Join(dir, "cekat-archiver")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/cekat-archiver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// worldDir is a temporary directory that every user may enter (t.TempDir's are root's alone).
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cekat-deploy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kubeDoc is one document of a manifest, kept to be decoded by its kind.
type kubeDoc struct {
	Kind string
	node yaml.Node
}

func (d kubeDoc) decode(t *testing.T, v any) {
	t.Helper()
	if err := d.node.Decode(v); err != nil {
		t.Fatalf("%s: %v", d.Kind, err)
	}
}

// kubeDocs reads every document of every manifest in deploy/kubernetes.
func kubeDocs(t *testing.T) map[string][]kubeDoc {
	t.Helper()
	out := map[string][]kubeDoc{}
	for _, path := range files(t, ".yaml") {
		if !strings.HasPrefix(path, "kubernetes/") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var d kubeDoc
			if err := dec.Decode(&d.node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			var head struct {
				Kind string `yaml:"kind"`
			}
			if err := d.node.Decode(&head); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			d.Kind = head.Kind
			out[path] = append(out[path], d)
		}
	}
	return out
}

// workload is what the access and scrape tests read of a Deployment, StatefulSet or CronJob.
type workload struct {
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Template    podTemplate `yaml:"template"`
		JobTemplate struct {
			Spec struct {
				Template podTemplate `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
		VolumeClaimTemplates []claimTemplate `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type claimTemplate struct {
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
}

func (w workload) pod(kind string) podTemplate {
	if kind == "CronJob" {
		return w.Spec.JobTemplate.Spec.Template
	}
	return w.Spec.Template
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		SecurityContext struct {
			RunAsUser          *int  `yaml:"runAsUser"`
			RunAsGroup         *int  `yaml:"runAsGroup"`
			FSGroup            *int  `yaml:"fsGroup"`
			SupplementalGroups []int `yaml:"supplementalGroups"`
		} `yaml:"securityContext"`
		Containers []struct {
			Name    string `yaml:"name"`
			EnvFrom []struct {
				ConfigMapRef struct {
					Name string `yaml:"name"`
				} `yaml:"configMapRef"`
			} `yaml:"envFrom"`
			Env []struct {
				Name      string `yaml:"name"`
				Value     string `yaml:"value"`
				ValueFrom struct {
					FieldRef struct {
						FieldPath string `yaml:"fieldPath"`
					} `yaml:"fieldRef"`
				} `yaml:"valueFrom"`
			} `yaml:"env"`
			VolumeMounts []struct {
				Name      string `yaml:"name"`
				MountPath string `yaml:"mountPath"`
			} `yaml:"volumeMounts"`
			Ports []struct {
				Name string `yaml:"name"`
			} `yaml:"ports"`
		} `yaml:"containers"`
		Volumes []podVolume `yaml:"volumes"`
	} `yaml:"spec"`
}

type podVolume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode *int   `yaml:"defaultMode"`
	} `yaml:"secret"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
	EmptyDir *struct{} `yaml:"emptyDir"`
}

// The image's user (deploy/docker/Dockerfile: USER 65532:65532), where the pod sets none.
const imageUser = 65532

// checkPodAccess lays out the pod's volumes as the kubelet would and runs `config check`
// and a spool write as the pod's user, with the pod's environment.
func checkPodAccess(t *testing.T, setpriv, bin string, d kubeDoc) {
	var w workload
	d.decode(t, &w)
	pod := w.pod(d.Kind)
	secrets, configMaps := kubeData(t)
	root := worldDir(t)
	sc := pod.Spec.SecurityContext
	uid, gid := imageUser, imageUser
	if sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	groups := slices.Clone(sc.SupplementalGroups)
	if sc.FSGroup != nil {
		groups = append(groups, *sc.FSGroup)
	}
	claims := map[string]bool{}
	for _, c := range w.Spec.VolumeClaimTemplates {
		claims[c.Metadata.Name] = true
	}
	for _, c := range pod.Spec.Containers {
		var env []string
		for _, from := range c.EnvFrom {
			data, ok := configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Fatalf("container %s: no ConfigMap %s", c.Name, from.ConfigMapRef.Name)
			}
			for k, v := range data {
				env = append(env, k+"="+under(root, v))
			}
		}
		for _, e := range c.Env {
			v := e.Value
			if e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
				v = w.Metadata.Name + "-0" // a StatefulSet's first pod; any name for the others
			}
			env = append(env, e.Name+"="+under(root, v))
		}
		for _, m := range c.VolumeMounts {
			dir := filepath.Join(root, m.MountPath)
			i := slices.IndexFunc(pod.Spec.Volumes, func(v podVolume) bool { return v.Name == m.Name })
			switch {
			case i >= 0 && pod.Spec.Volumes[i].Secret != nil:
				s := pod.Spec.Volumes[i].Secret
				data, ok := secrets[s.SecretName]
				if !ok {
					t.Fatalf("volume %s: no Secret %s (secret.example.yaml)", m.Name, s.SecretName)
				}
				// A Secret volume: root's files of mode defaultMode (0644 if unset). With
				// fsGroup, the kubelet gives them to that group and adds read for owner and
				// group (the volume is read-only): pkg/volume/volume_linux.go, SetVolumeOwnership.
				mode := os.FileMode(0o644)
				if s.DefaultMode != nil {
					mode = os.FileMode(*s.DefaultMode)
				}
				fileGID := 0
				if sc.FSGroup != nil {
					fileGID, mode = *sc.FSGroup, mode|0o440
				}
				mkdirOwned(t, dir, 0o755, 0, fileGID)
				for k, v := range data {
					writeOwned(t, filepath.Join(dir, k), v, mode, 0, fileGID)
				}
			case i >= 0 && pod.Spec.Volumes[i].PersistentVolumeClaim != nil, i < 0 && claims[m.Name]:
				// A fresh volume's root is root's, 0755. With fsGroup the kubelet gives it
				// to that group, group-writable and setgid.
				if sc.FSGroup != nil {
					mkdirOwned(t, dir, 0o775|os.ModeSetgid, 0, *sc.FSGroup)
				} else {
					mkdirOwned(t, dir, 0o755, 0, 0)
				}
			case i >= 0 && pod.Spec.Volumes[i].EmptyDir != nil:
				mkdirOwned(t, dir, 0o777, 0, 0)
			default:
				t.Fatalf("container %s mounts %s, which is no volume of the pod", c.Name, m.Name)
			}
		}
		// The image is FROM scratch: no passwd, so HOME is /.
		env = append(env, "HOME="+root)
		checkAccess(t, setpriv, bin, root, uid, gid, groups, env, nil)
	}
}

// kubeData returns the Secrets' (secret.example.yaml) and the ConfigMaps' data by name.
func kubeData(t *testing.T) (secrets, configMaps map[string]map[string]string) {
	t.Helper()
	secrets, configMaps = map[string]map[string]string{}, map[string]map[string]string{}
	for _, objs := range kubeDocs(t) {
		for _, d := range objs {
			var o struct {
				Metadata struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
				Data       map[string]string `yaml:"data"`
				StringData map[string]string `yaml:"stringData"`
			}
			d.decode(t, &o)
			switch d.Kind {
			case "Secret":
				secrets[o.Metadata.Name] = o.StringData
			case "ConfigMap":
				configMaps[o.Metadata.Name] = o.Data
			}
		}
	}
	return secrets, configMaps
}

// under puts an absolute path below root; other values are kept.
func under(root, v string) string {
	if strings.HasPrefix(v, "/") {
		return filepath.Join(root, v)
	}
	return v
}

func mkdirOwned(t *testing.T, dir string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func writeOwned(t *testing.T, path, content string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// checkAccess runs `cekat-archiver [args...] config check` as uid:gid with only groups, then
// writes a file in the spool directory it reports, as the same user.
func checkAccess(t *testing.T, setpriv, bin, root string, uid, gid int, groups []int, env, args []string) {
	t.Helper()
	as := []string{"--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid)}
	if len(groups) == 0 {
		as = append(as, "--clear-groups")
	} else {
		var gs []string
		for _, g := range groups {
			gs = append(gs, strconv.Itoa(g))
		}
		as = append(as, "--groups="+strings.Join(gs, ","))
	}
	who := fmt.Sprintf("as uid %d gid %d groups %v", uid, gid, groups)
	cmd := exec.Command(setpriv, slices.Concat(as, []string{bin, "config", "check"}, args)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cekat-archiver config check %s: %v\n%s", who, err, out)
	}
	m := regexp.MustCompile(`(?m)^  spool_dir: (.+)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("config check printed no sync.spool_dir:\n%s", out)
	}
	spool := string(m[1])
	if !strings.HasPrefix(spool, root+"/") {
		t.Fatalf("the spool %s is outside what the test laid out (%s)", spool, root)
	}
	write := exec.Command(setpriv, slices.Concat(as, []string{"/bin/sh", "-c", `mkdir -p "$1" && echo x >"$1/probe"`, "sh", spool})...)
	if out, err := write.CombinedOutput(); err != nil {
		t.Errorf("cannot write the spool %s %s: %v\n%s", strings.TrimPrefix(spool, root), who, err, out)
	}
}

// dynamicUser stands for the uid and gid systemd gives a DynamicUser (the first of its range).
const dynamicUser = 61184

// checkUnitAccess installs the archiver's files as the unit's install instructions say, lays
// out what systemd makes of the unit's directives at start, and runs `config check` as the
// dynamic user with the unit's environment and its ExecStart's options.
func checkUnitAccess(t *testing.T, setpriv, bin string) {
	unit, err := os.ReadFile("systemd/cekat-archiver.service")
	if err != nil {
		t.Fatal(err)
	}
	root := worldDir(t)
	installed := installAsDocumented(t, root, unit)
	dirs := map[string]string{} // directive: its value, the last one
	var creds [][2]string
	var envFiles, envs []string
	var execStart string
	for _, line := range strings.Split(string(unit), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch k {
		case "LoadCredential":
			id, path, _ := strings.Cut(v, ":")
			creds = append(creds, [2]string{id, path})
		case "EnvironmentFile":
			envFiles = append(envFiles, v)
		case "Environment":
			envs = append(envs, v)
		case "ExecStart":
			execStart = v
		default:
			dirs[k] = v
		}
	}
	if dirs["DynamicUser"] != "yes" {
		t.Fatalf("the unit is not DynamicUser=yes; the test models only that")
	}
	if g := dirs["SupplementaryGroups"]; g != "" {
		t.Fatalf("SupplementaryGroups=%s: not modelled", g)
	}
	const credDir = "/run/credentials/cekat-archiver.service"
	spec := strings.NewReplacer("%d", credDir, "%S", "/var/lib", "%%", "%")
	if name := dirs["ConfigurationDirectory"]; name != "" {
		// root's, of ConfigurationDirectoryMode (0755 by default)
		mkdirOwned(t, filepath.Join(root, "etc", name), octal(t, dirs["ConfigurationDirectoryMode"], 0o755), 0, 0)
	}
	if name := dirs["StateDirectory"]; name != "" {
		mkdirOwned(t, filepath.Join(root, "var/lib", name), octal(t, dirs["StateDirectoryMode"], 0o755), dynamicUser, dynamicUser)
	}
	// Credentials: read by systemd as root and written 0400 for the service's user alone (root's
	// with an ACL that lets the user read, or the user's where the file system has no ACLs:
	// src/core/exec-credential.c, write_credential); modelled as the user's.
	mkdirOwned(t, filepath.Join(root, credDir), 0o500, 0, 0)
	for _, c := range creds {
		data, err := os.ReadFile(filepath.Join(root, c[1]))
		if err != nil {
			t.Fatalf("LoadCredential=%s:%s: %v (the install instructions create %v)", c[0], c[1], err, installed)
		}
		writeOwned(t, filepath.Join(root, credDir, c[0]), string(data), 0o400, dynamicUser, dynamicUser)
	}
	if err := os.Chown(filepath.Join(root, credDir), dynamicUser, dynamicUser); err != nil {
		t.Fatal(err)
	}
	// The environment: files read by systemd as root, then Environment=; HOME is a dynamic
	// user's, /.
	env := []string{"HOME=" + root, "CREDENTIALS_DIRECTORY=" + filepath.Join(root, credDir)}
	for _, f := range envFiles {
		optional := strings.HasPrefix(f, "-")
		data, err := os.ReadFile(filepath.Join(root, strings.TrimPrefix(f, "-")))
		if err != nil {
			if optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			t.Fatalf("EnvironmentFile=%s: %v", f, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				k, v, _ := strings.Cut(l, "=")
				env = append(env, k+"="+under(root, v))
			}
		}
	}
	for _, e := range envs {
		k, v, _ := strings.Cut(spec.Replace(e), "=")
		env = append(env, k+"="+under(root, v))
	}
	// ExecStart=BINARY run OPTIONS...: the same options to config check.
	fields := strings.Fields(spec.Replace(execStart))
	if len(fields) < 2 || fields[1] != "run" {
		t.Fatalf("ExecStart=%s: want the binary and run", execStart)
	}
	var args []string
	for _, a := range fields[2:] {
		args = append(args, under(root, a))
	}
	checkAccess(t, setpriv, bin, root, dynamicUser, dynamicUser, nil, env, args)
}

func octal(t *testing.T, s string, def os.FileMode) os.FileMode {
	t.Helper()
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		t.Fatalf("mode %q: %v", s, err)
	}
	return os.FileMode(n)
}

// installAsDocumented carries out the unit's "install" lines below root (as root, with their
// modes), except those of the binary and the unit, and the documented edit of config.yaml:
// api.key emptied (the key is the credential). It returns the files it created.
func installAsDocumented(t *testing.T, root string, unit []byte) []string {
	t.Helper()
	var created []string
	for _, line := range strings.Split(string(unit), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "#"))
		if !strings.HasPrefix(line, "#") || len(f) == 0 || f[0] != "install" {
			continue
		}
		mode := os.FileMode(0o755) // install's default; the owner is the caller, root
		var operands []string
		for i := 1; i < len(f) && !strings.HasPrefix(f[i], "<<<") && !strings.HasPrefix(f[i], "#"); i++ {
			switch f[i] {
			case "-D":
			case "-m":
				i++
				mode = octal(t, f[i], 0)
			case "-o", "-g":
				i++
				if f[i] != "root" && f[i] != "0" {
					t.Fatalf("%s: only root's files are modelled", line)
				}
			default:
				operands = append(operands, f[i])
			}
		}
		if len(operands) != 2 {
			t.Fatalf("%s: want a source and a destination", line)
		}
		src, dst := operands[0], operands[1]
		if strings.HasPrefix(dst, "/usr/") || strings.HasPrefix(dst, "/etc/systemd/") {
			continue
		}
		if strings.HasSuffix(dst, "/") {
			dst += filepath.Base(src)
		}
		content := "test-api-key\n"
		if src != "/dev/stdin" {
			data, err := os.ReadFile(filepath.Join("..", src))
			if err != nil {
				t.Fatal(err)
			}
			content = string(data)
		}
		if filepath.Base(dst) == "config.yaml" {
			content = regexp.MustCompile(`(?m)^  key: .*$`).ReplaceAllString(content, `  key: ""`)
		}
		writeOwned(t, filepath.Join(root, dst), content, mode, 0, 0)
		created = append(created, dst)
	}
	if len(created) == 0 {
		t.Fatal("the unit documents no install line")
	}
	return created
}

// The spool outlives the pod: the volume that holds sync.spool_dir is a PersistentVolumeClaim
// defined in the manifests, or one of the StatefulSet's volumeClaimTemplates. On an emptyDir,
// what a killed pod could not write would be lost, and its API calls paid again.
func TestKubernetesSpoolPersists(t *testing.T) {
	_, configMaps := kubeData(t)
	claims := map[string]bool{}
	type workloadPod struct {
		path string
		w    workload
		pod  podTemplate
	}
	var pods []workloadPod
	for path, objs := range kubeDocs(t) {
		for _, d := range objs {
			switch d.Kind {
			case "PersistentVolumeClaim":
				var c struct {
					Metadata struct {
						Name string `yaml:"name"`
					} `yaml:"metadata"`
				}
				d.decode(t, &c)
				claims[c.Metadata.Name] = true
			case "Deployment", "StatefulSet", "CronJob":
				var w workload
				d.decode(t, &w)
				pods = append(pods, workloadPod{path, w, w.pod(d.Kind)})
			}
		}
	}
	if len(pods) != 3 {
		t.Fatalf("%d workloads, want the Deployment, the CronJob and the StatefulSet", len(pods))
	}
	for _, p := range pods {
		for _, c := range p.pod.Spec.Containers {
			spool := ""
			for _, from := range c.EnvFrom {
				if v := configMaps[from.ConfigMapRef.Name]["CEKAT_ARCHIVER_SYNC_SPOOL_DIR"]; v != "" {
					spool = v
				}
			}
			if spool == "" {
				t.Errorf("%s: container %s sets no CEKAT_ARCHIVER_SYNC_SPOOL_DIR", p.path, c.Name)
				continue
			}
			// The mount that holds the spool: the longest mount path above it.
			volume, longest := "", ""
			for _, m := range c.VolumeMounts {
				if strings.HasPrefix(spool+"/", strings.TrimSuffix(m.MountPath, "/")+"/") && len(m.MountPath) > len(longest) {
					volume, longest = m.Name, m.MountPath
				}
			}
			persistent := slices.ContainsFunc(p.w.Spec.VolumeClaimTemplates, func(v claimTemplate) bool { return v.Metadata.Name == volume })
			for _, v := range p.pod.Spec.Volumes {
				if v.Name == volume && v.PersistentVolumeClaim != nil {
					if !claims[v.PersistentVolumeClaim.ClaimName] {
						t.Errorf("%s: the claim %s is defined in no manifest", p.path, v.PersistentVolumeClaim.ClaimName)
					}
					persistent = true
				}
			}
			if !persistent {
				t.Errorf("%s: the spool %s is on the volume %q, which is neither a PersistentVolumeClaim nor a volumeClaimTemplate", p.path, spool, volume)
			}
		}
	}
}
