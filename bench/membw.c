/* Memory read bandwidth of this machine with 1 and 2 threads: each thread sums its own 256 MiB
 * buffer four times with AVX2 loads. A decode step streams every weight once, so this bounds what
 * a second thread can add to it (bench/NOTES.md, "Profiling a decode step in Chromium").
 *   gcc -O2 -mavx2 -pthread bench/membw.c -o /tmp/membw && /tmp/membw
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BYTES (256u << 20) /* per thread */
#define PASSES 4

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static volatile long long sink;

static void *read_all(void *buffer) {
    const __m256i *data = buffer;
    __m256i sum = _mm256_setzero_si256();
    for (int pass = 0; pass < PASSES; pass++)
        for (size_t i = 0; i < BYTES / sizeof(__m256i); i++)
            sum = _mm256_add_epi64(sum, _mm256_load_si256(data + i));
    sink = _mm256_extract_epi64(sum, 0);
    return NULL;
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        void *buffers[2];
        pthread_t ids[2];
        for (int i = 0; i < threads; i++) {
            buffers[i] = aligned_alloc(64, BYTES);
            if (!buffers[i]) {
                fprintf(stderr, "membw: cannot allocate %u bytes\n", BYTES);
                return 1;
            }
            for (size_t j = 0; j < BYTES; j += sizeof(uint64_t))
                *(uint64_t *)((char *)buffers[i] + j) = j;
        }
        double start = now();
        for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, read_all, buffers[i]);
        for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
        double seconds = now() - start;
        printf("%d thread(s): %.1f GB/s\n", threads, (double)threads * PASSES * BYTES / seconds / 1e9);
        for (int i = 0; i < threads; i++) free(buffers[i]);
    }
    return 0;
}
