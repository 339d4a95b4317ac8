// What the packed weights' memory costs to fault in, per way of getting it (the load's largest cost once the
// checkpoint is read from a mapping): 4 KiB pages touched by 1 or 2 threads, madvise(MADV_POPULATE_WRITE) by
// 2 threads (what gemm_pack.cc does), and madvise(MADV_HUGEPAGE) (transparent huge pages, "madvise" mode), and
// reading a mapped file once. Prints wall and system seconds per case.
//   g++ -O2 -pthread -o /tmp/page-faults bench/page-faults.cc && flock /tmp/cpu.lock /tmp/page-faults 4600 [file]
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double system_seconds() {
  rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

enum class Way { Touch1, Touch2, Populate2, HugeTouch1 };

void anonymous(size_t bytes, Way way, const char* label) {
  const double t0 = now(), s0 = system_seconds();
  char* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) return perror("mmap");
  if (way == Way::HugeTouch1) madvise(p, bytes, MADV_HUGEPAGE);
  auto work = [&](size_t begin, size_t end) {
    if (way == Way::Populate2) {
      if (madvise(p + begin, end - begin, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
    } else {
      for (size_t i = begin; i < end; i += 4096) p[i] = 1;
    }
  };
  if (way == Way::Touch2 || way == Way::Populate2) {
    std::thread other(work, bytes / 2, bytes);
    work(0, bytes / 2);
    other.join();
  } else {
    work(0, bytes);
  }
  std::printf("%-40s %6.2f s wall %6.2f s system\n", label, now() - t0, system_seconds() - s0);
  munmap(p, bytes);
}

void mapped_file(const char* path) {
  const int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return perror(path);
  const double t0 = now(), s0 = system_seconds();
  const size_t bytes = static_cast<size_t>(st.st_size);
  const char* p = static_cast<const char*>(mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0));
  if (p == MAP_FAILED) return perror("mmap");
  long sum = 0;
  for (size_t i = 0; i < bytes; i += 4096) sum += p[i];
  std::printf("%-40s %6.2f s wall %6.2f s system (%zu MB, %ld)\n", "mapped file, one read per page", now() - t0,
              system_seconds() - s0, bytes >> 20, sum & 1);
  munmap(const_cast<char*>(p), bytes);
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mb = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 4600;
  const size_t bytes = mb << 20;
  std::printf("faulting in %zu MB of anonymous memory\n", mb);
  anonymous(bytes, Way::Touch1, "4 KiB pages, 1 thread touching");
  anonymous(bytes, Way::Touch2, "4 KiB pages, 2 threads touching");
  anonymous(bytes, Way::Populate2, "MADV_POPULATE_WRITE, 2 threads");
  anonymous(bytes, Way::HugeTouch1, "MADV_HUGEPAGE, 1 thread touching");
  if (argc > 2) mapped_file(argv[2]);
  return 0;
}
