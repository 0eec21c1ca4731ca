/* fuzz_kubeconfig.c: libFuzzer target for the kubeconfig loader
 * (kube_config_load, libyaml document API + base64 *-data decoding).
 * The input is written to a memfd and loaded through its /proc/self/fd
 * path, so no file is left behind. A config that loads must have a
 * server URL without a trailing '/'.
 * Uses: kube.h. Must never: follow exec plugins (kube.c refuses them). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_config cfg;
    char path[64], err[512];
    size_t off = 0;
    int fd;

    if ((fd = memfd_create("kubeconfig", 0)) < 0)
        abort();
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    memset(&cfg, 0, sizeof cfg);
    err[0] = '\0';
    if (kube_config_load(path, &cfg, err, sizeof err) == 0) {
        size_t n;
        if (!cfg.server)
            abort();
        n = strlen(cfg.server);
        if (n > 1 && cfg.server[n - 1] == '/')
            abort();
        kube_config_free(&cfg);
    } else if (!err[0]) {
        abort();
    }
    close(fd);
    return 0;
}
