/* Independent fused elementwise chains launched together (kernels_cl/fused.cl explains one
 * chain). Chain s covers work-items [clg_s_begin, clg_s_begin + clg_s_n), starting on a
 * work-group boundary; its groups end before group clg_s_groups. The chains read nothing
 * another one writes, so their order does not matter. Python renders each chain's
 * block: its index arithmetic, loads, one temporary per op and its stores. */
${extensions}
typedef ${compute} clg_t;
${preamble}

${ops}

__kernel void ${name}(${args})
{
    const int clg_gid = get_global_id(0);
    const int clg_grp = get_group_id(0);
${segments}
}
