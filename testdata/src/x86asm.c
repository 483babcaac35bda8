/*
 * x86asm.c - x86 stack shapes the compilers here do not emit, written as assembly (issue 17),
 * built by i686 gcc at -O2 only (build.sh). Each function is one asm statement with the call's
 * marker (see pooltest.c) on its first line, where the debug information puts every
 * instruction of the statement.
 *
 * 1. RepMovsBetweenPushes: `rep movsd` copies 16 bytes between the pushes of the tag and size
 *    and the push of the pool type; it writes ecx, esi, edi and the memory at edi, never the
 *    argument slots already pushed.
 * 2. ExtraPushFirst: a register saved by a push before the three argument pushes (and popped
 *    after the call): the arguments are the three last pushes, not shifted by the first.
 * 3. AddressAsTag: the tag pushed is `$_g_TagWord`, an immediate covered by a base relocation:
 *    an address in the image, not a tag; the global it names is constant (.rdata) and holds
 *    'dWgT' (0x64576754, shown "TgWd").
 */
#include "mini_ntddk.h"

const ULONG g_TagWord = 'dWgT';
ULONG g_Src[4] = {1, 2, 3, 4};
ULONG g_Dst[4];
void *volatile g_AsmSink;

__attribute__((naked)) void RepMovsBetweenPushes(void)
{
    __asm__("push $0x704d6552\n\t" /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x44 tag=0x704D6552 */
            "push $0x44\n\t"
            "push %esi\n\t"
            "push %edi\n\t"
            "mov $_g_Src, %esi\n\t"
            "mov $_g_Dst, %edi\n\t"
            "mov $4, %ecx\n\t"
            "cld\n\t"
            "rep movsl\n\t"
            "pop %edi\n\t"
            "pop %esi\n\t"
            "push $0x200\n\t"
            "call *__imp__ExAllocatePoolWithTag@12\n\t"
            "mov %eax, _g_AsmSink\n\t"
            "ret\n\t");
}

__attribute__((naked)) void ExtraPushFirst(void)
{
    __asm__("push %ebx\n\t" /* SITE api=ExAllocatePoolWithTag type=0x1 size=0x58 tag=0x68737550 */
            "mov $0x11223344, %ebx\n\t"
            "push $0x68737550\n\t"
            "push $0x58\n\t"
            "push $1\n\t"
            "call *__imp__ExAllocatePoolWithTag@12\n\t"
            "mov %eax, _g_AsmSink\n\t"
            "pop %ebx\n\t"
            "ret\n\t");
}

__attribute__((naked)) void AddressAsTag(void)
{
    __asm__("push $_g_TagWord\n\t" /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x20 tag=unknown */
            "push $0x20\n\t"
            "push $0x200\n\t"
            "call *__imp__ExAllocatePoolWithTag@12\n\t"
            "mov %eax, _g_AsmSink\n\t"
            "ret\n\t");
}

/* 4. SwitchThenSite: the pool type is zeroed (`xor edi, edi`), then a switch on the parameter
 *    jumps through a table of absolute, relocated case addresses placed after the function
 *    (`jmp *table(,%eax,4)`, MSVC's 32-bit form, as in WinDivert32 1.3) and every case joins
 *    the call: the table's targets are the only other way in, so edi is still 0 there. */
__attribute__((naked)) void SwitchThenSite(void)
{
    __asm__("push %edi\n\t" /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x30 tag=0x68637753 */
            "xor %edi, %edi\n\t"
            "mov 8(%esp), %eax\n\t"
            "cmp $2, %eax\n\t"
            "ja 1f\n\t"
            "jmp *4f(,%eax,4)\n\t"
            "5: mov $1, %ecx\n\t"
            "jmp 2f\n\t"
            "6: mov $2, %ecx\n\t"
            "jmp 2f\n\t"
            "7: mov $3, %ecx\n\t"
            "2: mov %ecx, _g_Dst\n\t"
            "push $0x68637753\n\t"
            "push $0x30\n\t"
            "push %edi\n\t"
            "call *__imp__ExAllocatePoolWithTag@12\n\t"
            "mov %eax, _g_AsmSink\n\t"
            "1: pop %edi\n\t"
            "ret\n\t"
            ".p2align 2\n\t"
            "4: .long 5b, 6b, 7b\n\t");
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)DriverObject;
    (void)RegistryPath;
    RepMovsBetweenPushes();
    ExtraPushFirst();
    AddressAsTag();
    ((void (*)(ULONG))SwitchThenSite)(1);
    return STATUS_SUCCESS;
}
