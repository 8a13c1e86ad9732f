"""Stage handlers: the per-message work of the processing nodes without ROS, one module per stage, so the nodes and
the offline `av-pose reprocess` run exactly the same code.

    kernel.KernelHandler      on_audio, on_presence, request_capture, encoding, reset
    keypoints.KeypointHandler on_image, on_camera_info, configure, reset
    lifter.LifterHandler      on_keypoints, on_kernels, on_camera_info, lift, flush, configure, reset
    slfm.SlfmHandler          on_image, on_audio, on_camera_info, reset
    handover.HandoverTracker  on_pose, on_clock, reset

Each module also holds its node's parameter specs (`PARAMS`, `params.Param`). Parameters come as an attribute
namespace (a node's declared parameters, or the same names read from its YAML) that handlers read per message, so a
changed parameter holds at once (`configure()` where a handler builds something from them); transforms through a
`lookup(target, source, stamp_ns[, timeout_s])` callable; time through explicit `now` arguments (the node's clock at
arrival, or a bag's log time); `reset()` when time went back. Input a stage cannot use raises
`common.StageError(code, text)`; figures and problems for diagnostics come back as a `common.Report`. Plain Python,
no rclpy."""
