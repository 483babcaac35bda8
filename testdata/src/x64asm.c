/*
 * x64asm.c - x64 switches through jump tables, written as assembly (issue 17) so that the table
 * forms are exact; built by x86_64 gcc at -O2 only (build.sh). Each function is one asm
 * statement with the call's marker (see pooltest.c) on its first line.
 *
 * In both, the pool type is set to 0 (`xor r9d, r9d`) before a switch on the first parameter,
 * every case joins the call, and r9 is written by no case: with the table's targets known,
 * each path into the call carries r9 = 0; without them, the merge at the call knows nothing.
 *
 * 1. ImageBaseSwitch: MSVC's form, `lea rdx, [__ImageBase]; mov eax, [rdx + rax*4 + table]`,
 *    `add rax, rdx; jmp rax`: the table (after the function) holds each case's RVA.
 * 2. RelativeSwitch: gcc's and clang's form, `lea rdx, [table]; movsxd rax, [rdx + rax*4]`,
 *    `add rax, rdx; jmp rax`: each entry is the case's offset from the table, and the bound is
 *    checked on ecx before the index is copied to eax.
 * 3. ByteTableSwitch: MSVC's form of a sparse switch, the index bounded in memory (`cmp dword
 *    [rsp+30h], 5`, a `mov` that keeps the flags, then `ja`), reloaded, looked up in a byte table
 *    (`movzx eax, byte [rdx + rax + bytes]`: 0, 1, 1, 0, 1, 0) whose largest entry, 1, says
 *    the case table has two entries.
 * 4. UncheckedSwitch: gcc's form, but the bound is checked on r8d while the index comes from
 *    ecx: nothing says how long the table is, so it is not read, and the merge at the call
 *    keeps no constant (the pool type is reported unknown, never guessed).
 */
#include "mini_ntddk.h"

ULONG g_Case;
void *volatile g_AsmSink;

__attribute__((naked)) void ImageBaseSwitch(void)
{
    __asm__("sub $40, %rsp\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x40 tag=0x65736142 */
            "xor %r9d, %r9d\n\t"
            "cmp $2, %ecx\n\t"
            "ja 1f\n\t"
            "lea __ImageBase(%rip), %rdx\n\t"
            "mov %ecx, %eax\n\t"
            /* mov eax, [rdx + rax*4 + RVA of 4f]: encoded by hand, as gas has no operand
               form for an image-relative displacement; `.rva` writes the RVA. */
            ".byte 0x8b, 0x84, 0x82\n\t"
            ".rva 4f\n\t"
            "add %rdx, %rax\n\t"
            "jmp *%rax\n\t"
            "5: mov $1, %r10d\n\t"
            "jmp 2f\n\t"
            "6: mov $2, %r10d\n\t"
            "jmp 2f\n\t"
            "7: mov $3, %r10d\n\t"
            "2: mov %r10d, g_Case(%rip)\n\t"
            "mov %r9d, %ecx\n\t"
            "mov $0x40, %edx\n\t"
            "mov $0x65736142, %r8d\n\t"
            "call *__imp_ExAllocatePoolWithTag(%rip)\n\t"
            "mov %rax, g_AsmSink(%rip)\n\t"
            "1: add $40, %rsp\n\t"
            "ret\n\t"
            ".p2align 2\n\t"
            "4: .rva 5b, 6b, 7b\n\t");
}

__attribute__((naked)) void RelativeSwitch(void)
{
    __asm__("sub $40, %rsp\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x50 tag=0x6c655254 */
            "xor %r9d, %r9d\n\t"
            "cmp $3, %ecx\n\t"
            "jae 1f\n\t"
            "mov %ecx, %eax\n\t"
            "lea 4f(%rip), %rdx\n\t"
            "movslq (%rdx,%rax,4), %rax\n\t"
            "add %rdx, %rax\n\t"
            "jmp *%rax\n\t"
            "5: mov $1, %r10d\n\t"
            "jmp 2f\n\t"
            "6: mov $2, %r10d\n\t"
            "jmp 2f\n\t"
            "7: mov $3, %r10d\n\t"
            "2: mov %r10d, g_Case(%rip)\n\t"
            "mov %r9d, %ecx\n\t"
            "mov $0x50, %edx\n\t"
            "mov $0x6c655254, %r8d\n\t"
            "call *__imp_ExAllocatePoolWithTag(%rip)\n\t"
            "mov %rax, g_AsmSink(%rip)\n\t"
            "1: add $40, %rsp\n\t"
            "ret\n\t"
            ".p2align 2\n\t"
            "4: .long 5b - 4b, 6b - 4b, 7b - 4b\n\t");
}

__attribute__((naked)) void ByteTableSwitch(void)
{
    __asm__("sub $40, %rsp\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x60 tag=0x65747942 */
            "xor %r9d, %r9d\n\t"
            "mov %ecx, 0x30(%rsp)\n\t"
            "cmpl $5, 0x30(%rsp)\n\t"
            "mov %rdx, %r11\n\t"
            "ja 1f\n\t"
            "mov 0x30(%rsp), %eax\n\t"
            "lea __ImageBase(%rip), %rdx\n\t"
            /* movzx eax, byte [rdx + rax + RVA of 3f]; mov eax, [rdx + rax*4 + RVA of 4f] */
            ".byte 0x0f, 0xb6, 0x84, 0x02\n\t"
            ".rva 3f\n\t"
            ".byte 0x8b, 0x84, 0x82\n\t"
            ".rva 4f\n\t"
            "add %rdx, %rax\n\t"
            "jmp *%rax\n\t"
            "5: mov $1, %r10d\n\t"
            "jmp 2f\n\t"
            "6: mov $2, %r10d\n\t"
            "2: mov %r10d, g_Case(%rip)\n\t"
            "mov %r9d, %ecx\n\t"
            "mov $0x60, %edx\n\t"
            "mov $0x65747942, %r8d\n\t"
            "call *__imp_ExAllocatePoolWithTag(%rip)\n\t"
            "mov %rax, g_AsmSink(%rip)\n\t"
            "1: add $40, %rsp\n\t"
            "ret\n\t"
            ".p2align 2\n\t"
            "4: .rva 5b, 6b\n\t"
            "3: .byte 0, 1, 1, 0, 1, 0\n\t");
}

__attribute__((naked)) void UncheckedSwitch(void)
{
    __asm__("sub $40, %rsp\n\t" /* SITE api=ExAllocatePoolWithTag type=unknown size=0x70 tag=0x6b636843 */
            "xor %r9d, %r9d\n\t"
            "cmp $1, %r8d\n\t"
            "ja 1f\n\t"
            "mov %ecx, %eax\n\t"
            "lea 4f(%rip), %rdx\n\t"
            "movslq (%rdx,%rax,4), %rax\n\t"
            "add %rdx, %rax\n\t"
            "jmp *%rax\n\t"
            "5: mov $1, %r10d\n\t"
            "jmp 2f\n\t"
            "6: mov $2, %r10d\n\t"
            "2: mov %r10d, g_Case(%rip)\n\t"
            "mov %r9d, %ecx\n\t"
            "mov $0x70, %edx\n\t"
            "mov $0x6b636843, %r8d\n\t"
            "call *__imp_ExAllocatePoolWithTag(%rip)\n\t"
            "mov %rax, g_AsmSink(%rip)\n\t"
            "1: add $40, %rsp\n\t"
            "ret\n\t"
            ".p2align 2\n\t"
            "4: .long 5b - 4b, 6b - 4b\n\t");
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)DriverObject;
    (void)RegistryPath;
    ((void (*)(ULONG))ImageBaseSwitch)(1);
    ((void (*)(ULONG))RelativeSwitch)(2);
    ((void (*)(ULONG))ByteTableSwitch)(4);
    ((void (*)(ULONG, ULONG, ULONG))UncheckedSwitch)(1, 0, 0);
    return STATUS_SUCCESS;
}
