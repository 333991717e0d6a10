/* salined's configuration: what it accepts, and one-line errors for the
 * rest. */
#include "sald-config.h"

static const char good[] =
    "[salined]\n"
    "state-dir=/tmp/s\n"
    "node-timeout=9\n"
    "output-size=8M\n"
    "virt-type=qemu\n"
    "[site a]\n"
    "network=10.77.1.0/24\n"
    "range=10.77.1.100-10.77.1.149\n"
    "gateway=10.77.1.254\n"
    "[node a1]\n"
    "site=a\n"
    "uri=qemu+tcp://10.77.1.1/system\n"
    "cpus=4\n"
    "memory=2G\n"
    "[node a2]\n"
    "site=a\n"
    "uri=qemu+tcp://10.77.1.2/system\n"
    "cpus=2\n"
    "memory=1536\n"
    "bridge=virbr1\n"
    "pool-dir=/srv/pool\n"
    "[image zeta]\n"
    "dir=/srv/zeta\n"
    "[image alpha]\n"
    "dir=/srv/alpha\n";

static void
test_good(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SaldConfig) config = sald_config_load_data(good, "t", &error);
    const SaldNodeConf *node;

    g_assert_no_error(error);
    g_assert_cmpstr(config->state_dir, ==, "/tmp/s");
    g_assert_cmpstr(config->socket_path, ==, "/run/saline/saline.sock");
    g_assert_cmpint(config->node_timeout_s, ==, 9);
    g_assert_cmpuint(config->output_bytes, ==, 8 << 20);
    g_assert_cmpint(config->virt_type, ==, SALD_VIRT_QEMU);
    g_assert_null(config->emulator);
    g_assert_cmpuint(config->nodes->len, ==, 2);
    node = sald_config_node(config, "a2");
    g_assert_nonnull(node);
    g_assert_cmpuint(node->node->cpus, ==, 2);
    g_assert_cmpuint(node->node->mem_mib, ==, 1536);
    g_assert_cmpstr(node->bridge, ==, "virbr1");
    g_assert_cmpstr(node->pool_dir, ==, "/srv/pool");
    g_assert_cmpstr(sald_config_node(config, "a1")->bridge, ==, "br0");
    g_assert_cmpuint(sald_config_node(config, "a1")->node->mem_mib, ==, 2048);
    g_assert_null(sald_config_node(config, "b1"));
    /* Images sorted, for listings. */
    g_assert_cmpstr(((SaldImageConf *)config->images->pdata[0])->name, ==,
                    "alpha");
    g_assert_cmpstr(sald_config_image(config, "zeta")->dir, ==, "/srv/zeta");
}

static void
test_defaults(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SaldConfig) config = sald_config_load(NULL, &error);

    g_assert_no_error(error);
    g_assert_cmpstr(config->state_dir, ==, "/var/lib/saline");
    g_assert_cmpint(config->node_timeout_s, ==, 60);
    g_assert_cmpuint(config->output_bytes, ==, 64 << 20);
    g_assert_null(config->emulator);
    g_assert_cmpint(config->virt_type, ==, SALD_VIRT_AUTO);
    g_assert_cmpuint(config->nodes->len, ==, 0);
    /* No store: no snapshots, until an operator names one. */
    g_assert_null(config->kget_store);
    g_assert_cmpstr(config->kget_command, ==, "kget");
    g_assert_cmpint(config->snapshot_interval_s, ==, 600);
    g_assert_cmpuint(config->snapshot_keep, ==, 3);
    g_assert_false(config->snapshot_failure_kills);
}

typedef struct {
    const char *data;
    const char *message; /* NULL: any one-line message */
} BadCase;

/* Each case is refused with one line (that one, if given). */
static void
assert_refused(const BadCase *cases, gsize n)
{
    for (gsize i = 0; i < n; i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(SaldConfig) config =
            sald_config_load_data(cases[i].data, "t", &error);

        g_test_message("case %" G_GSIZE_FORMAT ": %s", i, cases[i].data);
        g_assert_null(config);
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
        g_assert_null(strchr(error->message, '\n'));
        if (cases[i].message) {
            g_assert_cmpstr(error->message, ==, cases[i].message);
        }
    }
}

static void
test_bad(void)
{
    static const BadCase cases[] = {
        {"[salined]\ncolour=blue\n", "t: unknown key 'colour' in group [salined]"},
        {"[nodes]\nx=1\n", "t: unknown group [nodes]"},
        {"[cluster x]\nx=1\n", "t: unknown group [cluster x]"},
        {"[salined]\nnode-timeout=0\n", NULL},
        {"[salined]\nvirt-type=xen\n",
         "t: [salined] virt-type 'xen' is not auto, kvm or qemu"},
        {"[salined]\nstate-dir=relative\n",
         "t: [salined] state-dir must be an absolute path"},
        {"[site a]\nrange=1\n", "t: [site a] needs 'network'"},
        {"[site a]\nnetwork=10.0.0.0/8\n[node n]\nsite=a\ncpus=1\nmemory=1G\n",
         "t: [node n] needs 'uri'"},
        {"[node n]\nsite=b\nuri=test:///default\ncpus=1\nmemory=1G\n",
         "t: node 'n' is in site 'b', which has no [site b]"},
        {"[site a]\nnetwork=10.0.0.0/8\n[node n]\nsite=a\nuri=x\ncpus=0\n"
         "memory=1G\n",
         NULL},
        {"[site a]\nnetwork=10.0.0.0/8\n[node n]\nsite=a\nuri=x\ncpus=1\n"
         "memory=lots\n",
         NULL},
        {"[site a]\nnetwork=10.0.0.0/8\n[node bad/name]\nsite=a\nuri=x\n"
         "cpus=1\nmemory=1G\n",
         NULL},
        {"[image i]\n", "t: [image i] needs 'dir'"},
        {"[snapshots]\non-failure=retry\n",
         "t: [snapshots] on-failure: 'retry' is neither keep nor kill"},
        {"[snapshots]\nkget=kget;reboot\n",
         "t: [snapshots] kget: 'kget;reboot' is not a plain path"},
        {"[snapshots]\ninterval=1\n", NULL},
        {"[snapshots]\nkey-file=site.key\n",
         "t: [snapshots] key-file must be an absolute path"},
        {"[image i]\ndir= \n", "t: [image i] needs 'dir'"},
        {"[site a]\nnetwork=10.0.0.0/8\n[node n]\nsite=a\nuri=x\nmemory=1G\n",
         "t: [node n] needs 'cpus'"},
        {"[site a]\nnetwork=10.0.0.0/8\n[node n]\nsite=a\nuri=x\ncpus=1\n"
         "memory=1G\ncolour=red\n",
         "t: unknown key 'colour' in group [node n]"},
        {"[site a]\nnetwork=10.0.0.0/8\n[node n]\nsite=a\nuri=x\ncpus=1\n"
         "memory=1G\npool-dir=pool\n",
         "t: [node n] pool-dir must be an absolute path"},
        {"[site a b]\nnetwork=10.0.0.0/8\n",
         "t: invalid site name 'a b' in [site a b]: use 1 to 64 letters, "
         "digits, '.', '_' and '-'"},
        {"[image]\ndir=/srv/i\n", "t: group [image] needs a name: [image NAME]"},
        {"not a key file", NULL},
    };

    assert_refused(cases, G_N_ELEMENTS(cases));
}

static void
test_oar(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SaldConfig) off = sald_config_load_data("[oar]\nuser=x\n", "t",
                                                      &error);
    g_autoptr(SaldConfig) ssh = NULL;
    g_autoptr(SaldConfig) cmd = NULL;
    const char *const ssh_argv[] = {"ssh", "-o", "BatchMode=yes",
                                    "saline@front.example", NULL};
    const char *const cmd_argv[] = {"ip", "netns", "exec", "head b",
                                    "runuser", NULL};

    /* Without server= or command=: salined's own scheduler. */
    g_assert_no_error(error);
    g_assert_null(off->oar);
    ssh = sald_config_load_data("[oar]\nserver=front.example\n"
                                "notify=10.0.0.5:7420\n",
                                "t", &error);
    g_assert_no_error(error);
    g_assert_nonnull(ssh->oar);
    g_assert_true(g_strv_equal((const char *const *)ssh->oar->command,
                               ssh_argv));
    g_assert_cmpstr(ssh->oar->user, ==, "saline");
    g_assert_cmpstr(ssh->oar->notify_host, ==, "10.0.0.5");
    g_assert_cmpuint(ssh->oar->notify_port, ==, 7420);
    g_assert_cmpstr(ssh->oar->job_command, ==, "/usr/lib/saline/saline-oarjob");
    g_assert_cmpuint(ssh->oar->checkpoint_s, ==, 60);
    g_assert_cmpuint(ssh->oar->signal, ==, 12);
    g_assert_cmpuint(ssh->oar->poll_s, ==, 5);
    cmd = sald_config_load_data("[oar]\ncommand=ip netns exec 'head b' "
                                "runuser\nnotify=::1:99\ncheckpoint=20\n"
                                "signal=10\n",
                                "t", &error);
    g_assert_no_error(error);
    g_assert_true(g_strv_equal((const char *const *)cmd->oar->command,
                               cmd_argv));
    g_assert_cmpstr(cmd->oar->notify_host, ==, "::1");
    g_assert_cmpuint(cmd->oar->checkpoint_s, ==, 20);
    g_assert_cmpuint(cmd->oar->signal, ==, 10);
}

static void
test_oar_bad(void)
{
    static const BadCase cases[] = {
        {"[oar]\nserver=a\ncommand=b\nnotify=1.2.3.4:5\n",
         "t: [oar] server and command: set one of them"},
        {"[oar]\nserver=a\n",
         "t: [oar] notify: '' is not ADDR:PORT (where the OAR jobs' scripts "
         "reach salined)"},
        {"[oar]\nserver=a\nnotify=1.2.3.4:0\n", NULL},
        {"[oar]\nserver=a\nnotify=1.2.3.4\n", NULL},
        {"[oar]\nserver=a\nnotify=:80\n", NULL},
        {"[oar]\nserver=a b\nnotify=1.2.3.4:5\n", NULL},
        {"[oar]\nserver=a\nuser=r;oot\nnotify=1.2.3.4:5\n", NULL},
        {"[oar]\ncommand=ssh 'x\nnotify=1.2.3.4:5\n", NULL},
        {"[oar]\nserver=a\nnotify=1.2.3.4:5\njob-command=oarjob\n",
         "t: [oar] job-command must be an absolute path"},
        {"[oar]\nserver=a\nnotify=1.2.3.4:5\nsignal=99\n", NULL},
        {"[oar]\nserver=a\nnotify=1.2.3.4:5\nqueue=default\n",
         "t: unknown key 'queue' in group [oar]"},
    };

    assert_refused(cases, G_N_ELEMENTS(cases));
}

static void
test_missing_file(void)
{
    g_autoptr(GError) error = NULL;

    g_assert_null(sald_config_load("/nonexistent/salined.conf", &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/salined-config/good", test_good);
    g_test_add_func("/salined-config/defaults", test_defaults);
    g_test_add_func("/salined-config/bad", test_bad);
    g_test_add_func("/salined-config/missing-file", test_missing_file);
    g_test_add_func("/salined-config/oar", test_oar);
    g_test_add_func("/salined-config/oar-bad", test_oar_bad);
    return g_test_run();
}
