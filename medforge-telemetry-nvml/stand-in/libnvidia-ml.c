/*
 * A stand-in for NVIDIA's libnvidia-ml.so.1, for tests on machines without
 * a GPU: the NVML functions MedForge calls, answering from a text file the
 * test writes, so that the real loader, the real FFI and the real
 * nvml-wrapper code run and the test decides what the GPUs read.
 *
 * The file is `nvml-stand-in.state` beside the library itself (found with
 * dladdr, so nothing in the environment is needed) and is read on every
 * call; one GPU per line (lines starting with '#' are comments):
 *
 *   uuid;name;memory_total;memory_used;utilization;temperature;power_mw;pid,pid
 *
 * Without the file, nvmlInit_v2 fails as on a host whose driver is not
 * loaded (NVML_ERROR_DRIVER_NOT_LOADED).
 *
 * Build: cc -shared -fPIC -o libnvidia-ml.so.1 libnvidia-ml.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_UNKNOWN = 999,
};

typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

#define MAX_GPUS 16
#define MAX_PIDS 16

struct gpu {
    char uuid[96], name[96];
    unsigned long long memory_total, memory_used;
    unsigned int utilization, temperature, power_mw;
    unsigned int pids[MAX_PIDS];
    unsigned int pid_count;
};

static int initialised;

/* Reads the state file into gpus; returns how many, or -1. */
static int read_state(struct gpu *gpus) {
    Dl_info self;
    char path[4096];
    if (!dladdr((void *)read_state, &self) || !self.dli_fname) return -1;
    const char *slash = strrchr(self.dli_fname, '/');
    int dir = slash ? (int)(slash - self.dli_fname) : 1;
    snprintf(path, sizeof path, "%.*s/nvml-stand-in.state", dir, slash ? self.dli_fname : ".");
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0;
    while (n < MAX_GPUS && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        struct gpu *g = &gpus[n];
        memset(g, 0, sizeof *g);
        char *save = NULL, *field = strtok_r(line, ";\n", &save);
        for (int i = 0; field && i < 8; i++, field = strtok_r(NULL, ";\n", &save)) {
            switch (i) {
            case 0: snprintf(g->uuid, sizeof g->uuid, "%s", field); break;
            case 1: snprintf(g->name, sizeof g->name, "%s", field); break;
            case 2: g->memory_total = strtoull(field, NULL, 10); break;
            case 3: g->memory_used = strtoull(field, NULL, 10); break;
            case 4: g->utilization = (unsigned int)strtoul(field, NULL, 10); break;
            case 5: g->temperature = (unsigned int)strtoul(field, NULL, 10); break;
            case 6: g->power_mw = (unsigned int)strtoul(field, NULL, 10); break;
            case 7: {
                char *psave = NULL;
                for (char *p = strtok_r(field, ",", &psave); p && g->pid_count < MAX_PIDS; p = strtok_r(NULL, ",", &psave))
                    g->pids[g->pid_count++] = (unsigned int)strtoul(p, NULL, 10);
                break;
            }
            }
        }
        n++;
    }
    fclose(f);
    return n;
}

/* The GPU a handle names (handles are index + 1), read afresh. */
static nvmlReturn_t gpu_of(nvmlDevice_t device, struct gpu *out) {
    static struct gpu gpus[MAX_GPUS];
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    int n = read_state(gpus);
    unsigned long index = (unsigned long)device;
    if (n < 0) return NVML_ERROR_UNKNOWN;
    if (index == 0 || index > (unsigned long)n) return NVML_ERROR_INVALID_ARGUMENT;
    *out = gpus[index - 1];
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char *from, char *to, unsigned int length) {
    if (!to) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(from) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(to, from);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    struct gpu gpus[MAX_GPUS];
    if (read_state(gpus) < 0) return NVML_ERROR_DRIVER_NOT_LOADED;
    initialised = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    initialised = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    return copy_string("550.00.stand-in", version, length);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    struct gpu gpus[MAX_GPUS];
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    int n = read_state(gpus);
    if (n < 0) return NVML_ERROR_UNKNOWN;
    *count = (unsigned int)n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    unsigned int count;
    nvmlReturn_t r = nvmlDeviceGetCount_v2(&count);
    if (r != NVML_SUCCESS) return r;
    if (index >= count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = (nvmlDevice_t)(unsigned long)(index + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    if (r == NVML_SUCCESS) *index = (unsigned int)((unsigned long)device - 1);
    return r;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    return r != NVML_SUCCESS ? r : copy_string(g.uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    return r != NVML_SUCCESS ? r : copy_string(g.name, name, length);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    if (r != NVML_SUCCESS) return r;
    memory->total = g.memory_total;
    memory->reserved = 0;
    memory->used = g.memory_used;
    memory->free = g.memory_total - g.memory_used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    if (r != NVML_SUCCESS) return r;
    utilization->gpu = g.utilization;
    utilization->memory = g.utilization / 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temperature) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    if (r != NVML_SUCCESS) return r;
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *temperature = g.temperature;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    if (r == NVML_SUCCESS) *power = g.power_mw;
    return r;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    struct gpu g;
    nvmlReturn_t r = gpu_of(device, &g);
    if (r != NVML_SUCCESS) return r;
    if (*count < g.pid_count || (!infos && g.pid_count > 0)) {
        *count = g.pid_count;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < g.pid_count; i++) {
        infos[i].pid = g.pids[i];
        infos[i].usedGpuMemory = g.memory_used / g.pid_count;
        infos[i].gpuInstanceId = 0xFFFFFFFF;
        infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    *count = g.pid_count;
    return NVML_SUCCESS;
}
