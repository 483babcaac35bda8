/*
 * arm64asm.c - ARM64 switches through jump tables, written as assembly (issue 17) so that the
 * table forms are exact; built by clang for aarch64-pc-windows-msvc at -O2 only (build.sh). Each
 * function is one asm statement with the call's marker (see pooltest.c) on its first line.
 *
 * In each, the pool type is set to 0 (`mov w12, #0`) before a switch on the first parameter,
 * every case joins the call, and w12 is written by no case: with the table's targets known,
 * each path into the call carries w12 = 0; without them, the merge at the call knows nothing.
 * Entries count instructions (4 bytes) from a base label.
 *
 * 1. MsvcWordSwitch: MSVC's form, `adr x10, table; ldrsw x9, [x10, w0, uxtw #2]; adr x10,
 *    base; add x9, x10, x9, lsl #2; br x9`, bounded by `cmp w0, #2; b.hi`.
 * 2. MsvcByteSwitch: MSVC's small form, signed bytes counted from the table itself, which
 *    follows the cases (negative entries), `ldrsb x9, [x10, w0, uxtw]`, bounded by `b.hs`.
 * 3. ClangSwitch: clang's form, the table in .rdata (`adrp`/`add`), the index copied with
 *    `mov w8, w0` after the bound check and read as x8, unsigned bytes `ldrb w11, [x9, x8]`
 *    counted from an `adr` base.
 * 4. GccSwitch: gcc's form, `ldrb w9, [x10, w0, uxtw]`, the entry sign-extended by the add
 *    itself (`add x9, x11, w9, sxtb #2`): the base is the join, after the cases, so the
 *    entries are negative (0xfd, 0xff).
 * 5. UncheckedSwitch: the bound is checked on w1 while the index is w0: nothing says how long
 *    the table is, so it is not read, and the pool type is reported unknown, never guessed.
 * 6. WideIndexSwitch: `cmp w0, #1`, then the whole x0 indexes the table (`[x10, x0, lsl #2]`):
 *    the compare bounds only the low half of x0, so the table is not read either.
 *
 * Naked functions get no .pdata (DriverEntry does: build.sh passes -funwind-tables), so
 * drvaudit analyses the code on either side of DriverEntry as a region of leaf functions, and
 * one unread table in a region keeps every merge of that region free of constants: functions 5
 * and 6 come after DriverEntry, in a region of their own, so that they do not hide what
 * functions 1 to 4 show.
 */
#include "mini_ntddk.h"

ULONG g_Case;
void *volatile g_AsmSink;

/* The call and the join shared by every function: w13 is the case, w12 the pool type. */
#define JOIN(size, lo, hi)                                                                     \
    "2: adrp x8, g_Case\n\t"                                                                   \
    "str w13, [x8, :lo12:g_Case]\n\t"                                                          \
    "mov w0, w12\n\t"                                                                          \
    "mov w1, #" size "\n\t"                                                                    \
    "mov w2, #" lo "\n\t"                                                                      \
    "movk w2, #" hi ", lsl #16\n\t"                                                            \
    "adrp x8, __imp_ExAllocatePoolWithTag\n\t"                                                 \
    "ldr x8, [x8, :lo12:__imp_ExAllocatePoolWithTag]\n\t"                                      \
    "blr x8\n\t"                                                                               \
    "adrp x8, g_AsmSink\n\t"                                                                   \
    "str x0, [x8, :lo12:g_AsmSink]\n\t"                                                        \
    "1: ldp x29, x30, [sp], #16\n\t"                                                           \
    "ret\n\t"

__attribute__((naked)) void MsvcWordSwitch(void)
{
    __asm__("stp x29, x30, [sp, #-16]!\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x40 tag=0x64726f57 */
            "mov w12, #0\n\t"
            "cmp w0, #2\n\t"
            "b.hi 1f\n\t"
            "adr x10, 4f\n\t"
            "ldrsw x9, [x10, w0, uxtw #2]\n\t"
            "adr x10, 3f\n\t"
            "add x9, x10, x9, lsl #2\n\t"
            "br x9\n\t"
            "3: mov w13, #1\n\t"
            "b 2f\n\t"
            "6: mov w13, #2\n\t"
            "b 2f\n\t"
            "7: mov w13, #3\n\t"
            JOIN("0x40", "0x6f57", "0x6472")
            ".p2align 2\n\t"
            "4: .word 0, (6b - 3b) / 4, (7b - 3b) / 4\n\t");
}

__attribute__((naked)) void MsvcByteSwitch(void)
{
    __asm__("stp x29, x30, [sp, #-16]!\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x50 tag=0x74796253 */
            "mov w12, #0\n\t"
            "cmp w0, #4\n\t"
            "b.hs 1f\n\t"
            "adr x10, 4f\n\t"
            "ldrsb x9, [x10, w0, uxtw]\n\t"
            "add x9, x10, x9, lsl #2\n\t"
            "br x9\n\t"
            "5: mov w13, #1\n\t"
            "b 2f\n\t"
            "6: mov w13, #2\n\t"
            JOIN("0x50", "0x6253", "0x7479")
            "4: .byte (5b - 4b) / 4, (6b - 4b) / 4, (5b - 4b) / 4, (6b - 4b) / 4\n\t"
            ".p2align 2\n\t");
}

__attribute__((naked)) void ClangSwitch(void)
{
    __asm__("stp x29, x30, [sp, #-16]!\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x60 tag=0x676e6c43 */
            "mov w12, #0\n\t"
            "cmp w0, #2\n\t"
            "b.hi 1f\n\t"
            "mov w8, w0\n\t"
            "adrp x9, 4f\n\t"
            "add x9, x9, :lo12:4f\n\t"
            "adr x10, 3f\n\t"
            "ldrb w11, [x9, x8]\n\t"
            "add x10, x10, x11, lsl #2\n\t"
            "br x10\n\t"
            "3: mov w13, #1\n\t"
            "b 2f\n\t"
            "6: mov w13, #2\n\t"
            "b 2f\n\t"
            "7: mov w13, #3\n\t"
            JOIN("0x60", "0x6c43", "0x676e")
            ".section .rdata,\"dr\"\n\t"
            "4: .byte 0, (6b - 3b) / 4, (7b - 3b) / 4\n\t"
            ".text\n\t");
}

__attribute__((naked)) void GccSwitch(void)
{
    __asm__("stp x29, x30, [sp, #-16]!\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x70 tag=0x31636347 */
            "mov w12, #0\n\t"
            "cmp w0, #1\n\t"
            "b.hi 1f\n\t"
            "adr x10, 4f\n\t"
            "ldrb w9, [x10, w0, uxtw]\n\t"
            "adr x11, 3f\n\t"
            "add x9, x11, w9, sxtb #2\n\t"
            "br x9\n\t"
            "5: mov w13, #1\n\t"
            "b 2f\n\t"
            "6: mov w13, #2\n\t"
            "3:\n\t"
            JOIN("0x70", "0x6347", "0x3163")
            "4: .byte (5b - 3b) / 4, (6b - 3b) / 4\n\t"
            ".p2align 2\n\t");
}

/* Defined after DriverEntry (see the top of this file). */
void UncheckedSwitch(void);
void WideIndexSwitch(void);

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)DriverObject;
    (void)RegistryPath;
    ((void (*)(ULONG))MsvcWordSwitch)(1);
    ((void (*)(ULONG))MsvcByteSwitch)(2);
    ((void (*)(ULONG))ClangSwitch)(2);
    ((void (*)(ULONG))GccSwitch)(0);
    ((void (*)(ULONG, ULONG))UncheckedSwitch)(1, 0);
    ((void (*)(ULONG))WideIndexSwitch)(1);
    return STATUS_SUCCESS;
}

__attribute__((naked)) void UncheckedSwitch(void)
{
    __asm__("stp x29, x30, [sp, #-16]!\n\t" /* SITE api=ExAllocatePoolWithTag type=unknown size=0x80 tag=0x68636e55 */
            "mov w12, #0\n\t"
            "cmp w1, #1\n\t"
            "b.hi 1f\n\t"
            "adr x10, 4f\n\t"
            "ldrsw x9, [x10, w0, uxtw #2]\n\t"
            "adr x10, 3f\n\t"
            "add x9, x10, x9, lsl #2\n\t"
            "br x9\n\t"
            "3: mov w13, #1\n\t"
            "b 2f\n\t"
            "6: mov w13, #2\n\t"
            JOIN("0x80", "0x6e55", "0x6863")
            ".p2align 2\n\t"
            "4: .word 0, (6b - 3b) / 4\n\t");
}

__attribute__((naked)) void WideIndexSwitch(void)
{
    __asm__("stp x29, x30, [sp, #-16]!\n\t" /* SITE api=ExAllocatePoolWithTag type=unknown size=0x90 tag=0x65646957 */
            "mov w12, #0\n\t"
            "cmp w0, #1\n\t"
            "b.hi 1f\n\t"
            "adr x10, 4f\n\t"
            "ldrsw x9, [x10, x0, lsl #2]\n\t"
            "adr x10, 3f\n\t"
            "add x9, x10, x9, lsl #2\n\t"
            "br x9\n\t"
            "3: mov w13, #1\n\t"
            "b 2f\n\t"
            "6: mov w13, #2\n\t"
            JOIN("0x90", "0x6957", "0x6564")
            ".p2align 2\n\t"
            "4: .word 0, (6b - 3b) / 4\n\t");
}
