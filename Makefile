# mtp: one `make` builds the library, the CLI and the test programs.
#   make            build/mtp (release, -O3 -march=native)
#   make test       every tests/test_*.c program, then every tests/test_*.sh script, all run
#                   (tests/run.sh), one summing line at the end
#   make test-asan  the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-asan-native  the decoding kernel tests so, built for this CPU (AVX-512, AMX)
#   make fuzz       every fuzz/fuzz_*.c libFuzzer target (clang), each run FUZZ_SECONDS
#   make demo       the main job (see README)
# Optional pieces are detected and announced; force them off with NO_BLAS=1 / NO_OMP=1 /
# NO_MPI=1.

BUILD    ?= build
CC       ?= gcc
OPT      ?= -O3 -march=native
WARN     := -Wall -Wextra -Wshadow -Wundef -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter
SAN      ?=
# -ffp-contract=off: batch invariance needs a*b+c never fused behind our back (clang fuses
# by default; gcc in ISO mode does not). Fused multiply-adds are written as fmaf or intrinsics.
CFLAGS   += -std=c11 -D_POSIX_C_SOURCE=200809L -ffp-contract=off $(OPT) $(SAN) $(WARN) -g -Iinclude -Isrc -Itests -MMD -MP
LDFLAGS  += $(SAN)
LDLIBS   += -lcjson -lpcre2-8 -lunistring -lm -lmicrohttpd -lpthread
ifeq ($(CI),true)
CFLAGS   += -Werror
endif

# --- OpenMP -------------------------------------------------------------------
ifndef NO_OMP
HAVE_OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo 1)
endif
ifeq ($(HAVE_OMP),1)
CFLAGS   += -fopenmp -DMTP_HAVE_OMP=1
LDFLAGS  += -fopenmp
OMP_MSG  := OpenMP
else
CFLAGS   += -DMTP_HAVE_OMP=0
OMP_MSG  := no OpenMP (single-threaded)
endif

# --- BLAS: prefer Debian's OpenMP build of OpenBLAS (shares the OpenMP thread pool
# with our own loops, and runs single-threaded when called inside a parallel region).
OB_OMP := /usr/lib/x86_64-linux-gnu/openblas-openmp
ifndef NO_BLAS
ifneq ($(wildcard $(OB_OMP)/libopenblas.so),)
BLAS_CFLAGS := -I/usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB    := $(OB_OMP)/libopenblas.so.0
BLAS_MSG    := OpenBLAS (OpenMP build)
else ifneq ($(shell pkg-config --exists openblas 2>/dev/null && echo 1),)
BLAS_CFLAGS := $(shell pkg-config --cflags openblas)
BLAS_LIB    := libopenblas.so.0
BLAS_MSG    := OpenBLAS (pkg-config)
endif
endif
# OpenBLAS is opened at run time (src/kernels/backend.c says why), so it is not linked.
ifneq ($(BLAS_LIB),)
CFLAGS += $(BLAS_CFLAGS) -DMTP_HAVE_BLAS=1 -DMTP_BLAS_LIB='"$(BLAS_LIB)"'
LDLIBS += -ldl -lpthread
else
CFLAGS += -DMTP_HAVE_BLAS=0
BLAS_MSG := no BLAS (built-in matmul, slow)
endif

# --- MPI (training over many processes, src/train/dist.c): mpicc's flags, used for that
# one file; the binaries link libmpi, which a run without mpirun never starts.
ifndef NO_MPI
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
endif
ifneq ($(MPI_LIBS),)
$(BUILD)/src/train/dist.o: CFLAGS += $(MPI_CFLAGS) -DMTP_HAVE_MPI=1
LDLIBS  += $(MPI_LIBS)
MPI_MSG := Open MPI (mpicc)
else
$(BUILD)/src/train/dist.o: CFLAGS += -DMTP_HAVE_MPI=0
MPI_MSG := no MPI (one process)
endif

# The library: src/<layer>/*.c (tools/check_layers.sh says which layer may use which).
# The plain reference kernels (tests/oracle) are the tests' oracle, not library code; the
# CLI links them too, for `mtp bench matmul`'s baseline.
LIB_SRC  := $(wildcard src/*/*.c)
CLI_SRC  := $(wildcard cli/*.c)
ORACLE_SRC := $(wildcard tests/oracle/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_COMMON := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
ORACLE_OBJ := $(ORACLE_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(TEST_COMMON:tests/%.c=$(BUILD)/tests/%)
TEST_SH  := $(sort $(wildcard tests/test_*.sh))

.PHONY: all test test-asan test-asan-native fuzz fuzz-bins check-layers clean demo announce
all: announce $(BUILD)/mtp $(TEST_BIN) $(TEST_HELPERS)

announce:
	@echo "mtp build: $(CC), $(OMP_MSG), $(BLAS_MSG), $(MPI_MSG)"

$(BUILD)/libmtp.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/mtp: $(CLI_OBJ) $(ORACLE_OBJ) $(BUILD)/libmtp.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(ORACLE_OBJ) $(BUILD)/libmtp.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# tests/run.sh runs every test even after one fails and ends with the one line that sums
# them all: `N passed, M failed, K skipped`. The build is a make of its own, so that what
# it prints at its end (removing intermediate objects) comes before the tests, not after.
test:
	@$(MAKE) --no-print-directory all
	@MTP_BUILD=$(BUILD) bash tests/run.sh $(TEST_BIN) $(TEST_SH)

# The sanitizer build lives in its own folder; the suite runs unchanged against it.
test-asan:
	$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

# test-asan builds without -march=native, so it checks the portable kernels; this checks
# the decoding kernels' and the training attention's AVX-512 and AMX paths (where the CPU has
# them) under the sanitizers
ASAN_NATIVE_TESTS := build-asan-native/tests/test_ops_decode build-asan-native/tests/test_decode \
                     build-asan-native/tests/test_ops
test-asan-native:
	$(MAKE) --no-print-directory BUILD=build-asan-native OPT="-O1 -g -fno-omit-frame-pointer -march=native" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" $(ASAN_NATIVE_TESTS)
	@MTP_BUILD=build-asan-native bash tests/run.sh $(ASAN_NATIVE_TESTS)

# Parsers of untrusted files each have a libFuzzer target fuzz/fuzz_NAME.c, built with clang
# (sanitized, no OpenMP) and run for FUZZ_SECONDS from its seeds in fuzz/corpus/NAME
# (tools/run_fuzz.sh: a crash counts as a failure and leaves its input in build-fuzz/).
FUZZ_SECONDS ?= 20
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang NO_OMP=1 OPT="-O1 -g" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" fuzz-bins
	@bash tools/run_fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_SRC:fuzz/fuzz_%.c=%)
fuzz-bins: $(FUZZ_BIN)
$(BUILD)/fuzz/%: $(BUILD)/fuzz/%.o $(BUILD)/libmtp.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
$(BUILD)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# dependencies between the library's layers point one way (tools/check_layers.sh)
check-layers:
	@bash tools/check_layers.sh

demo:
	bash tools/demo.sh

clean:
	rm -rf build build-asan build-asan-native build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(ORACLE_OBJ:.o=.d) $(TEST_BIN:=.d) $(TEST_HELPERS:=.d)
