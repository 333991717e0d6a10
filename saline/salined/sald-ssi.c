/*
 * SSI jobs (saline/README.md, "SSI jobs"): the job's VMs form one
 * virtual SSI cluster. salined checks the image, makes the cluster's key,
 * hands name and key to the guests in the job spec, and ends the job
 * when VM 0, which runs the command through `ssi run`, has stopped.
 */
#include "sald-core-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define SSI_KEY_BYTES 32
/* image.env is a few lines; more is not an image build-image.sh made. */
#define IMAGE_ENV_MAX (64 * 1024)

gboolean
sald_ssi_check_image(const SaldImageConf *image, GError **error)
{
    g_autofree char *path = g_build_filename(image->dir, "image.env", NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) local = NULL;
    gsize len = 0;

    if (!g_file_get_contents(path, &text, &len, &local) ||
        len > IMAGE_ENV_MAX) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "image '%s' has no SSI parts (cannot read '%s': %s)",
                    image->name, path, local ? local->message : "too large");
        return FALSE;
    }
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');

        if (next) {
            *next++ = '\0';
        }
        if (g_str_equal(line, "SSI=1")) {
            return TRUE;
        }
        line = next;
    }
    g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                "image '%s' has no SSI parts (no SSI=1 in its image.env)",
                image->name);
    return FALSE;
}

char *
sald_ssi_new_key(GError **error)
{
    guint8 key[SSI_KEY_BYTES];
    GString *hex = g_string_sized_new(2 * SSI_KEY_BYTES);
    gsize got = 0;

    while (got < sizeof(key)) {
        ssize_t n = getrandom(key + got, sizeof(key) - got, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                        "cannot make an SSI cluster key: %s",
                        g_strerror(errno));
            g_string_free(hex, TRUE);
            return NULL;
        }
        got += (gsize)n;
    }
    for (gsize i = 0; i < sizeof(key); i++) {
        g_string_append_printf(hex, "%02x", key[i]);
    }
    memset(key, 0, sizeof(key));
    return g_string_free(hex, FALSE);
}

void
sald_ssi_spec(GString *spec, const SalJob *job)
{
    if (!job->ssi || !job->ssi_key) {
        return;
    }
    g_string_append_printf(
        spec, "ssi=1\nssi_cluster=saline-%" G_GINT64_FORMAT "\nssi_key=%s\n",
        job->id, job->ssi_key);
}

gboolean
sald_ssi_ended(const SalJob *job, GPtrArray *vms, gint *exit_status)
{
    const SalVm *vm0 = sald_job_find_vm(vms, 0);

    if (!job->ssi || !vm0 || vm0->state != SAL_VM_STOPPED) {
        return FALSE;
    }
    *exit_status = vm0->exit_status;
    return TRUE;
}
