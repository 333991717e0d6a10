#include "sald-virt.h"

#include <libvirt/virterror.h>

#define OVERLAY_SUFFIX ".qcow2"
#define OUTPUT_SUFFIX ".out"

gboolean
sald_virt_error(GError **error, const char *fmt, ...)
{
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, SAL_ERROR, SAL_ERROR_NODE, "%s: %s", what,
                virGetLastErrorMessage());
    return FALSE;
}

gboolean
sald_virt_last_error_is(int code)
{
    virErrorPtr err = virGetLastError();

    return err && err->code == code;
}

virConnectPtr
sald_virt_open(const char *uri, GError **error)
{
    virConnectPtr conn = virConnectOpen(uri);

    if (!conn) {
        sald_virt_error(error, "cannot connect to '%s'", uri);
        return NULL;
    }
    if (virConnectSetKeepAlive(conn, 5, 3) < 0) {
        sald_virt_error(error, "cannot set keepalive on '%s'", uri);
        virConnectClose(conn);
        return NULL;
    }
    return conn;
}

gboolean
sald_virt_parse_domain(const char *name, gint64 *job_id, guint *index)
{
    g_auto(GStrv) parts = NULL;
    guint64 job, idx;

    if (!g_str_has_prefix(name, SALD_DOMAIN_PREFIX)) {
        return FALSE;
    }
    parts = g_strsplit(name + strlen(SALD_DOMAIN_PREFIX), "-", 3);
    if (g_strv_length(parts) != 2 ||
        !g_ascii_string_to_unsigned(parts[0], 10, 1, G_MAXINT64, &job, NULL) ||
        !g_ascii_string_to_unsigned(parts[1], 10, 0, SAL_MAX_VMS - 1, &idx,
                                    NULL)) {
        return FALSE;
    }
    *job_id = (gint64)job;
    *index = (guint)idx;
    return TRUE;
}

virStoragePoolPtr
sald_virt_pool(virConnectPtr conn, const char *dir, GError **error)
{
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn, SALD_POOL_NAME);
    int active;

    if (!pool) {
        g_autofree char *path = NULL;
        g_autofree char *xml = NULL;

        if (!dir) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                        "node has no storage pool '%s'", SALD_POOL_NAME);
            return NULL;
        }
        path = g_markup_escape_text(dir, -1);
        xml = g_strdup_printf("<pool type='dir'><name>%s</name>"
                              "<target><path>%s</path></target></pool>",
                              SALD_POOL_NAME, path);
        pool = virStoragePoolDefineXML(conn, xml, 0);
        if (!pool) {
            /* Another VM's creation on this node may have just made it. */
            pool = virStoragePoolLookupByName(conn, SALD_POOL_NAME);
        }
        if (!pool) {
            sald_virt_error(error, "cannot define storage pool '%s' at '%s'",
                       SALD_POOL_NAME, dir);
            return NULL;
        }
        if (virStoragePoolBuild(pool, 0) < 0 &&
            virStoragePoolIsActive(pool) != 1) {
            sald_virt_error(error, "cannot build storage pool '%s' at '%s'",
                       SALD_POOL_NAME, dir);
            virStoragePoolFree(pool);
            return NULL;
        }
        virStoragePoolSetAutostart(pool, 1);
    }
    active = virStoragePoolIsActive(pool);
    if (active == 0 && virStoragePoolCreate(pool, 0) < 0 &&
        virStoragePoolIsActive(pool) != 1) {
        sald_virt_error(error, "cannot start storage pool '%s'", SALD_POOL_NAME);
        virStoragePoolFree(pool);
        return NULL;
    }
    return pool;
}

gboolean
sald_virt_volume_delete(virStoragePoolPtr pool, const char *name, GError **error)
{
    virStorageVolPtr vol = virStorageVolLookupByName(pool, name);
    gboolean ok = TRUE;

    if (!vol) {
        return TRUE;
    }
    if (virStorageVolDelete(vol, 0) < 0 &&
        !sald_virt_last_error_is(VIR_ERR_NO_STORAGE_VOL)) {
        ok = sald_virt_error(error, "cannot delete volume '%s'", name);
    }
    virStorageVolFree(vol);
    return ok;
}

/* A leftover of a cut-short attempt is replaced. */
char *
sald_virt_volume_create(virStoragePoolPtr pool, const char *name, const char *xml,
              GError **error)
{
    virStorageVolPtr vol;
    char *path;

    if (!sald_virt_volume_delete(pool, name, error)) {
        return NULL;
    }
    vol = virStorageVolCreateXML(pool, xml, 0);
    if (!vol) {
        sald_virt_error(error, "cannot create volume '%s'", name);
        return NULL;
    }
    path = virStorageVolGetPath(vol);
    virStorageVolFree(vol);
    if (!path) {
        sald_virt_error(error, "cannot get the path of volume '%s'", name);
        return NULL;
    }
    return path;
}

static void G_GNUC_PRINTF(2, 3)
append_markup(GString *xml, const char *fmt, ...)
{
    g_autofree char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_markup_vprintf_escaped(fmt, ap);
    va_end(ap);
    g_string_append(xml, text);
}

char *
sald_virt_domain_xml(const SaldVmSpec *spec, const char *overlay_path,
                     const char *output_path)
{
    g_autoptr(GString) xml = g_string_new(NULL);
    g_autofree char *kernel = g_build_filename(spec->image_dir, "vmlinuz", NULL);
    g_autofree char *initrd =
        g_build_filename(spec->image_dir, "initrd.img", NULL);

    g_string_append_printf(
        xml, "<domain type='%s'%s>\n",
        spec->virt_type == SALD_VIRT_KVM ? "kvm" : "qemu",
        spec->incoming ? " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
                       : "");
    g_string_append_printf(xml, "  <name>%s</name>\n", spec->domain);
    g_string_append_printf(xml,
                           "  <memory unit='MiB'>%" G_GUINT64_FORMAT
                           "</memory>\n  <vcpu>%u</vcpu>\n",
                           spec->mem_mib, spec->cpus);
    append_markup(
        xml,
        "  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n"
        "    <kernel>%s</kernel>\n    <initrd>%s</initrd>\n"
        "    <cmdline>console=ttyS0 no_timer_check panic=-1</cmdline>\n"
        "  </os>\n",
        kernel, initrd);
    append_markup(
        xml,
        "  <sysinfo type='fwcfg'>\n"
        "    <entry name='opt/org.saline/job'>%s</entry>\n"
        "  </sysinfo>\n",
        spec->spec);
    g_string_append(xml, "  <features><acpi/></features>\n"
                         "  <on_poweroff>destroy</on_poweroff>\n"
                         "  <on_reboot>destroy</on_reboot>\n"
                         "  <on_crash>destroy</on_crash>\n"
                         "  <devices>\n");
    if (spec->emulator) {
        append_markup(xml, "    <emulator>%s</emulator>\n",
                                      spec->emulator);
    }
    append_markup(
        xml,
        "    <disk type='file' device='disk'>\n"
        "      <driver name='qemu' type='qcow2'/>\n"
        "      <source file='%s'/>\n"
        "      <target dev='vda' bus='virtio'/>\n"
        "    </disk>\n"
        "    <disk type='file' device='disk'>\n"
        "      <driver name='qemu' type='raw' cache='writethrough'/>\n"
        "      <source file='%s'/>\n"
        "      <target dev='vdb' bus='virtio'/>\n"
        "    </disk>\n"
        "    <interface type='bridge'>\n"
        "      <source bridge='%s'/>\n"
        "      <mac address='%s'/>\n"
        "      <model type='virtio'/>\n"
        "    </interface>\n",
        overlay_path, output_path, spec->bridge, spec->mac);
    g_string_append(xml, "    <serial type='pty'><target port='0'/></serial>\n"
                         "    <console type='pty'/>\n"
                         "    <memballoon model='none'/>\n"
                         "  </devices>\n");
    if (spec->incoming) {
        /* libvirt has no API to load a migration stream into a new
         * domain, so QEMU waits for one that sald-snap.c starts. */
        g_string_append(xml, "  <qemu:commandline>\n"
                             "    <qemu:arg value='-incoming'/>\n"
                             "    <qemu:arg value='defer'/>\n"
                             "  </qemu:commandline>\n");
    }
    g_string_append(xml, "</domain>\n");
    return g_string_free(g_steal_pointer(&xml), FALSE);
}

static gboolean
domain_running(virConnectPtr conn, const char *name)
{
    virDomainPtr dom = virDomainLookupByName(conn, name);
    gboolean running;

    if (!dom) {
        return FALSE;
    }
    running = virDomainIsActive(dom) == 1;
    virDomainFree(dom);
    return running;
}

static gboolean
volume_upload(virConnectPtr conn, virStorageVolPtr vol, const char *name,
              GBytes *data, GError **error)
{
    virStreamPtr st = virStreamNew(conn, 0);
    gsize len;
    const char *p = g_bytes_get_data(data, &len);
    gboolean ok = FALSE;

    if (!st || virStorageVolUpload(vol, st, 0, len, 0) < 0) {
        sald_virt_error(error, "cannot write volume '%s'", name);
        goto out;
    }
    while (len > 0) {
        int n = virStreamSend(st, p, MIN(len, (gsize)(1 << 20)));

        if (n < 0) {
            sald_virt_error(error, "cannot write volume '%s'", name);
            virStreamAbort(st);
            goto out;
        }
        p += n;
        len -= (gsize)n;
    }
    if (virStreamFinish(st) < 0) {
        sald_virt_error(error, "cannot write volume '%s'", name);
        goto out;
    }
    ok = TRUE;
out:
    if (st) {
        virStreamFree(st);
    }
    return ok;
}

/* Volume @name holding exactly @data; its path. */
static char *
volume_create_from(virConnectPtr conn, virStoragePoolPtr pool,
                   const char *name, GBytes *data, GError **error)
{
    g_autofree char *xml = g_strdup_printf(
        "<volume><name>%s</name>"
        "<capacity unit='bytes'>%" G_GSIZE_FORMAT "</capacity>"
        "<allocation>0</allocation>"
        "<target><format type='raw'/></target></volume>",
        name, g_bytes_get_size(data));
    g_autofree char *path = sald_virt_volume_create(pool, name, xml, error);
    virStorageVolPtr vol;
    gboolean ok;

    if (!path) {
        return NULL;
    }
    vol = virStorageVolLookupByName(pool, name);
    if (!vol) {
        sald_virt_error(error, "cannot find volume '%s'", name);
        return NULL;
    }
    ok = volume_upload(conn, vol, name, data, error);
    virStorageVolFree(vol);
    return ok ? g_steal_pointer(&path) : NULL;
}

gboolean
sald_virt_create(virConnectPtr conn, const SaldVmSpec *spec, GError **error)
{
    virStoragePoolPtr pool = NULL;
    virDomainPtr dom = NULL;
    g_autofree char *overlay_name = g_strconcat(spec->domain, OVERLAY_SUFFIX,
                                                NULL);
    g_autofree char *output_name = g_strconcat(spec->domain, OUTPUT_SUFFIX,
                                               NULL);
    g_autofree char *backing = NULL;
    g_autofree char *vol_xml = NULL;
    g_autofree char *overlay = NULL;
    g_autofree char *output = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *disk = g_build_filename(spec->image_dir, "disk.qcow2",
                                             NULL);
    gboolean ok = FALSE;

    if (domain_running(conn, spec->domain)) {
        return TRUE;
    }
    pool = sald_virt_pool(conn, spec->pool_dir, error);
    if (!pool) {
        return FALSE;
    }
    if (spec->overlay_data) {
        /* The snapshot's copy of the overlay: a qcow2 file whose backing
         * is the image's disk, at the same path on every node. */
        overlay = volume_create_from(conn, pool, overlay_name,
                                     spec->overlay_data, error);
    } else {
        /* No capacity: qemu-img takes the backing disk's. */
        backing = g_markup_escape_text(disk, -1);
        vol_xml = g_strdup_printf(
            "<volume><name>%s</name><capacity unit='bytes'>0</capacity>"
            "<target><format type='qcow2'/></target>"
            "<backingStore><path>%s</path><format type='qcow2'/>"
            "</backingStore></volume>",
            overlay_name, backing);
        overlay = sald_virt_volume_create(pool, overlay_name, vol_xml, error);
    }
    if (!overlay) {
        goto out;
    }
    if (spec->output_data) {
        output = volume_create_from(conn, pool, output_name,
                                    spec->output_data, error);
    } else {
        g_free(vol_xml);
        vol_xml = g_strdup_printf(
            "<volume><name>%s</name>"
            "<capacity unit='bytes'>%" G_GUINT64_FORMAT "</capacity>"
            "<allocation>0</allocation>"
            "<target><format type='raw'/></target></volume>",
            output_name, spec->output_bytes);
        output = sald_virt_volume_create(pool, output_name, vol_xml, error);
    }
    if (!output) {
        goto out;
    }
    xml = sald_virt_domain_xml(spec, overlay, output);
    dom = virDomainCreateXML(conn, xml,
                             spec->incoming ? VIR_DOMAIN_START_PAUSED : 0);
    if (!dom) {
        sald_virt_error(error, "cannot start domain '%s'", spec->domain);
        goto out;
    }
    ok = TRUE;
out:
    if (!ok) {
        sald_virt_volume_delete(pool, overlay_name, NULL);
        sald_virt_volume_delete(pool, output_name, NULL);
    }
    if (dom) {
        virDomainFree(dom);
    }
    virStoragePoolFree(pool);
    return ok;
}

gboolean
sald_virt_destroy(virConnectPtr conn, const char *domain, GError **error)
{
    virDomainPtr dom = virDomainLookupByName(conn, domain);
    virStoragePoolPtr pool;
    g_autofree char *overlay_name = g_strconcat(domain, OVERLAY_SUFFIX, NULL);
    g_autofree char *output_name = g_strconcat(domain, OUTPUT_SUFFIX, NULL);
    g_autofree char *copy_vda = g_strconcat(domain, SALD_COPY_VDA_SUFFIX, NULL);
    g_autofree char *copy_vdb = g_strconcat(domain, SALD_COPY_VDB_SUFFIX, NULL);
    g_autofree char *report =
        g_strconcat(domain, SALD_RESTORE_REPORT_SUFFIX, NULL);
    gboolean ok;

    if (dom) {
        if (virDomainDestroy(dom) < 0 &&
            !sald_virt_last_error_is(VIR_ERR_OPERATION_INVALID) &&
            !sald_virt_last_error_is(VIR_ERR_NO_DOMAIN)) {
            sald_virt_error(error, "cannot destroy domain '%s'", domain);
            virDomainFree(dom);
            return FALSE;
        }
        virDomainFree(dom);
    } else if (!sald_virt_last_error_is(VIR_ERR_NO_DOMAIN)) {
        return sald_virt_error(error, "cannot look up domain '%s'", domain);
    }
    pool = virStoragePoolLookupByName(conn, SALD_POOL_NAME);
    if (!pool) {
        return sald_virt_last_error_is(VIR_ERR_NO_STORAGE_POOL)
                   ? TRUE
                   : sald_virt_error(error, "cannot look up storage pool '%s'",
                                SALD_POOL_NAME);
    }
    /* A pool refreshed by someone else may not list a new volume yet. */
    virStoragePoolRefresh(pool, 0);
    ok = sald_virt_volume_delete(pool, overlay_name, error) &&
         sald_virt_volume_delete(pool, output_name, error) &&
         sald_virt_volume_delete(pool, copy_vda, error) &&
         sald_virt_volume_delete(pool, copy_vdb, error) &&
         sald_virt_volume_delete(pool, report, error);
    virStoragePoolFree(pool);
    return ok;
}

/* Reads @length bytes at @offset of @vol into @buf. */
static gboolean
volume_read(virConnectPtr conn, virStorageVolPtr vol, const char *name,
            guint64 offset, guint64 length, GByteArray *buf, guint64 max,
            GError **error)
{
    virStreamPtr st = virStreamNew(conn, 0);
    char chunk[65536];
    gboolean ok = FALSE;

    if (!st) {
        return sald_virt_error(error, "cannot read volume '%s'", name);
    }
    if (virStorageVolDownload(vol, st, offset, length, 0) < 0) {
        sald_virt_error(error, "cannot read volume '%s'", name);
        virStreamFree(st);
        return FALSE;
    }
    for (;;) {
        int n = virStreamRecv(st, chunk, sizeof(chunk));

        if (n < 0) {
            sald_virt_error(error, "cannot read volume '%s'", name);
            virStreamAbort(st);
            goto out;
        }
        if (n == 0) {
            break;
        }
        /* The node sends what was asked, never more. */
        if (buf->len + (guint64)n > max) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                        "volume '%s' sent more than %" G_GUINT64_FORMAT
                        " bytes",
                        name, max);
            virStreamAbort(st);
            goto out;
        }
        g_byte_array_append(buf, (const guint8 *)chunk, (guint)n);
    }
    if (virStreamFinish(st) < 0) {
        sald_virt_error(error, "cannot read volume '%s'", name);
        goto out;
    }
    ok = TRUE;
out:
    virStreamFree(st);
    return ok;
}

gboolean
sald_virt_volume_read_all(virConnectPtr conn, virStorageVolPtr vol,
                          const char *name, guint64 max, GBytes **data,
                          GError **error)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    virStorageVolInfo info;

    if (virStorageVolGetInfo(vol, &info) < 0) {
        return sald_virt_error(error, "cannot get the size of volume '%s'",
                               name);
    }
    /* A file volume's capacity is its size (raw) or the guest's view of
     * it (qcow2): the file is never larger than allocation. */
    if (MAX(info.capacity, info.allocation) > max) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                    "volume '%s' is larger than %" G_GUINT64_FORMAT " bytes",
                    name, max);
        return FALSE;
    }
    if (!volume_read(conn, vol, name, 0, 0, buf, max, error)) {
        return FALSE;
    }
    *data = g_byte_array_free_to_bytes(g_steal_pointer(&buf));
    return TRUE;
}

gboolean
sald_virt_read_output(virConnectPtr conn, const char *domain, guint64 max,
                      SalOutputHeader *header, GBytes **data, GError **error)
{
    g_autofree char *name = g_strconcat(domain, OUTPUT_SUFFIX, NULL);
    g_autoptr(GByteArray) head = g_byte_array_new();
    g_autoptr(GByteArray) body = g_byte_array_new();
    virStoragePoolPtr pool;
    virStorageVolPtr vol;
    virStorageVolInfo info;
    gboolean ok = FALSE;

    pool = virStoragePoolLookupByName(conn, SALD_POOL_NAME);
    if (!pool) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                    "no output drive for '%s': the node has no pool '%s'",
                    domain, SALD_POOL_NAME);
        return FALSE;
    }
    vol = virStorageVolLookupByName(pool, name);
    if (!vol) {
        virStoragePoolRefresh(pool, 0);
        vol = virStorageVolLookupByName(pool, name);
    }
    virStoragePoolFree(pool);
    if (!vol) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                    "no output drive '%s'", name);
        return FALSE;
    }
    if (virStorageVolGetInfo(vol, &info) < 0) {
        sald_virt_error(error, "cannot get the size of volume '%s'", name);
        goto out;
    }
    if (!volume_read(conn, vol, name, 0, SAL_OUTPUT_HEADER_SIZE, head,
                     SAL_OUTPUT_HEADER_SIZE, error) ||
        !sal_output_parse_header(head->data, head->len, info.capacity, header,
                                 error)) {
        g_prefix_error(error, "output drive of '%s': ", domain);
        goto out;
    }
    if (data) {
        guint64 want = MIN(header->length, max);

        if (want > 0 && !volume_read(conn, vol, name, SAL_OUTPUT_DATA_OFFSET,
                                     want, body, want, error)) {
            goto out;
        }
        *data = g_byte_array_free_to_bytes(g_steal_pointer(&body));
    }
    ok = TRUE;
out:
    virStorageVolFree(vol);
    return ok;
}

static GHashTable *
name_set(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}

gboolean
sald_virt_list(virConnectPtr conn, GHashTable **domains, GHashTable **volumes,
               GError **error)
{
    g_autoptr(GHashTable) doms = name_set();
    g_autoptr(GHashTable) vols = name_set();
    virDomainPtr *list = NULL;
    virStoragePoolPtr pool;
    int n;

    n = virConnectListAllDomains(conn, &list, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        return sald_virt_error(error, "cannot list domains");
    }
    for (int i = 0; i < n; i++) {
        const char *name = virDomainGetName(list[i]);
        gint64 job;
        guint idx;

        if (name && sald_virt_parse_domain(name, &job, &idx)) {
            g_hash_table_add(doms, g_strdup(name));
        }
        virDomainFree(list[i]);
    }
    g_free(list);

    pool = virStoragePoolLookupByName(conn, SALD_POOL_NAME);
    if (pool) {
        virStorageVolPtr *vlist = NULL;

        virStoragePoolRefresh(pool, 0);
        n = virStoragePoolListAllVolumes(pool, &vlist, 0);
        virStoragePoolFree(pool);
        if (n < 0) {
            return sald_virt_error(error, "cannot list volumes");
        }
        for (int i = 0; i < n; i++) {
            const char *name = virStorageVolGetName(vlist[i]);
            const char *dot = name ? strrchr(name, '.') : NULL;
            g_autofree char *vm = dot ? g_strndup(name, dot - name) : NULL;
            gint64 job;
            guint idx;

            if (vm && sald_virt_parse_domain(vm, &job, &idx) &&
                (g_str_equal(dot, OVERLAY_SUFFIX) ||
                 g_str_equal(dot, OUTPUT_SUFFIX) ||
                 g_str_equal(dot, SALD_COPY_VDA_SUFFIX) ||
                 g_str_equal(dot, SALD_COPY_VDB_SUFFIX) ||
                 g_str_equal(dot, SALD_RESTORE_REPORT_SUFFIX))) {
                g_hash_table_add(vols, g_steal_pointer(&vm));
            }
            virStorageVolFree(vlist[i]);
        }
        g_free(vlist);
    } else if (!sald_virt_last_error_is(VIR_ERR_NO_STORAGE_POOL)) {
        return sald_virt_error(error, "cannot look up storage pool '%s'",
                          SALD_POOL_NAME);
    }
    *domains = g_steal_pointer(&doms);
    *volumes = g_steal_pointer(&vols);
    return TRUE;
}
