/* Demo guest entry and interrupt stubs (64-bit). r15 belongs to the idle loop alone (the C code
 * is built with -ffixed-r15): the agent may set it while the VM is paused and the guest reports it. */
	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	lea	stack_top(%rip), %rsp
	lea	__bss_start(%rip), %rdi
	lea	__bss_end(%rip), %rcx
	sub	%rdi, %rcx
	xor	%eax, %eax
	rep stosb
	xor	%r15d, %r15d
	call	guest_main
idle:
	sti
	hlt			/* sti's shadow makes sti;hlt atomic: no wake-up is lost */
	cli
	xor	%edi, %edi
	xchg	%rdi, %r15	/* take r15 and clear it in one instruction */
	call	guest_poll
	jmp	idle

	.text
/* One stub per vector 0..47: push the vector number, jump to the common path. */
	.altmacro
	.macro	stub n
isr_\n:
	push	$\n
	jmp	isr_common
	.endm
	.set	i, 0
	.rept	48
	stub	%i
	.set	i, i + 1
	.endr

isr_common:
	push	%rax
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	mov	72(%rsp), %rdi
	sub	$8, %rsp
	call	isr_dispatch	/* exceptions never return from here */
	add	$8, %rsp
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rax
	add	$8, %rsp
	iretq

	.macro	stub_addr n
	.quad	isr_\n
	.endm
	.section .rodata
	.globl	isr_table
	.balign	8
isr_table:
	.set	i, 0
	.rept	48
	stub_addr %i
	.set	i, i + 1
	.endr

	.section .bss
	.balign	16
	.space	16384
stack_top:
