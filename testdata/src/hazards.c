/*
 * hazards.c - one tiny, otherwise clean driver used for the image-level HVCI
 * hazards. The hazard comes from how it is built (see build.sh):
 *   wxsection  -DWX_SECTION: Patch() lives in a section ".rwx" that the linker
 *              marks readable, writable and executable.
 *   misaligned section alignment 0x200 (smaller than a page).
 *   iatexec    .rdata (which holds the IAT) merged into .text.
 * Markers: see pooltest.c.
 */
#include "mini_ntddk.h"

#define HAZ_TAG 'zaHh' /* 0x7A614868, shown "hHaz" */

#ifdef WX_SECTION
#define CODE_SECTION __attribute__((section(".rwx")))
#else
#define CODE_SECTION
#endif

void *volatile g_Buffer;
volatile ULONG g_Counter;

CODE_SECTION NOINLINE void Patch(ULONG Value)
{
    g_Counter += Value;
}

VOID NTAPI HazardUnload(PDRIVER_OBJECT DriverObject)
{
    (void)DriverObject;
    ExFreePoolWithTag(g_Buffer, HAZ_TAG); /* SITE api=ExFreePoolWithTag type=- size=- tag=0x7A614868 */
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)RegistryPath;
    g_Buffer = ExAllocatePool2(POOL_FLAG_NON_PAGED, 0x40, HAZ_TAG); /* SITE api=ExAllocatePool2 type=0x40 size=0x40 tag=0x7A614868 */
    Patch(1);
    DriverObject->DriverUnload = HazardUnload;
    return STATUS_SUCCESS;
}
